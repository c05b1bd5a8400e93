"""A subprocess probe of an API-only process: what it loads and how much memory it holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

#: Modules an API-only install holds besides the standard library: core, this package,
#: httpx and its dependencies. The probe refuses every other third-party module, so the
#: figure does not depend on what else the environment has installed (httpx imports
#: click, rich and pygments for its own command line when they are present).
API_ONLY = (
    "finite_memory",
    "finite_memory_api",
    "httpx",
    "httpcore",
    "h11",
    "anyio",
    "sniffio",
    "idna",
    "certifi",
    "exceptiongroup",
    "typing_extensions",
)

#: Code that makes an interpreter refuse every third-party module outside ``API_ONLY``.
BLOCKER = f"""
import importlib.abc, sys
class _APIOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in {API_ONLY!r}:
            return None
        raise ModuleNotFoundError(f"{{name}} is not part of an API-only install", name=name)
sys.meta_path.insert(0, _APIOnly())
"""

_TURN = """
import json, sys
from finite_memory import Chat, Memory
chat = Chat("openai:test-model", Memory(max_tokens=2048), base_url=sys.argv[1] + "/v1", api_key="sk-rss")
text = "".join(chat.stream("hello")) + chat.send("again").text
status = dict(line.split(":", 1) for line in open("/proc/self/status"))
kib = lambda key: int(status[key].split()[0])
third_party = sorted({m.partition(".")[0] for m in sys.modules} - set(sys.stdlib_module_names))
print(json.dumps({"text": text, "rss_kib": kib("VmRSS"), "peak_kib": kib("VmHWM"), "modules": third_party}))
"""


def api_only_turn(base_url: str, *, api_only: bool = True) -> dict[str, Any]:
    """Run one streamed and one whole turn in a fresh interpreter; its RSS and modules."""
    code = (BLOCKER if api_only else "") + _TURN
    # no coverage tracer in the probe (pytest-cov starts one in subprocesses): it would count as the process's memory
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COV_CORE_", "COVERAGE_"))}
    result = subprocess.run([sys.executable, "-c", code, base_url], capture_output=True, text=True, timeout=60, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout)  # type: ignore[no-any-return]
