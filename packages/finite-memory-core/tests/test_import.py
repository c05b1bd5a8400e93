from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
before = set(sys.modules)
import finite_memory
from finite_memory import Memory, Chat, Message
m = Memory()
m.add("user", "hi")
m.context()
loaded = set(sys.modules) - before
third_party = sorted(
    name for name in loaded
    if name.split(".")[0] not in sys.stdlib_module_names and name.split(".")[0] != "finite_memory"
)
print(",".join(third_party))
"""


def test_core_imports_no_third_party_module() -> None:
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_bare_import_is_lazy() -> None:
    code = "import sys, finite_memory; print(sorted(m for m in sys.modules if m.startswith('finite_memory')))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "['finite_memory']"
