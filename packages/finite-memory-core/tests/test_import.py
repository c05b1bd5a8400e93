from __future__ import annotations

import subprocess
import sys

import pytest

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


def test_public_submodules_are_attributes_after_import_finite_memory() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import finite_memory\n"
        "names = ['policies', 'testing', 'compat', 'stores', 'eval', 'embedders', 'scorers', 'summarizers']\n"
        "print(finite_memory.policies.Semantic.__name__, finite_memory.testing.EchoBackend.__name__)\n"
        "print(all(getattr(finite_memory, n) is sys.modules['finite_memory.' + n] for n in names))\n"
        "print(set(names) <= set(dir(finite_memory)), 'py' in dir(finite_memory))\n"
        "third = sorted(m for m in set(sys.modules) - before if m.split('.')[0] not in sys.stdlib_module_names"
        " and m.split('.')[0] != 'finite_memory')\n"
        "print(third)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines() == ["Semantic EchoBackend", "True", "True False", "[]"]


def test_missing_names_and_broken_submodules_raise_what_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    import finite_memory

    with pytest.raises(AttributeError, match="module 'finite_memory' has no attribute 'no_such_thing'"):
        _ = finite_memory.no_such_thing
    with pytest.raises(AttributeError, match="has no attribute '_private'"):
        _ = finite_memory._private
    assert not hasattr(finite_memory, "no_such_thing")

    def needs_a_missing_package(name: str) -> None:
        error = ModuleNotFoundError("No module named 'langchain_core'")
        error.name = "langchain_core"
        raise error

    monkeypatch.setattr(finite_memory, "import_module", needs_a_missing_package)
    with pytest.raises(ModuleNotFoundError, match="langchain_core"):
        _ = finite_memory.some_integration  # the submodule exists but needs a package: say which
