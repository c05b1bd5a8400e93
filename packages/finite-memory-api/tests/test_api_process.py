"""Process-level costs: import time, what ``import finite_memory`` loads, and resident memory."""

from __future__ import annotations

import subprocess
import sys
import time

from _api_probe import api_only_turn
from _api_server import FakeLLMServer


def run(code: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def best_time(code: str, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
        best = min(best, time.perf_counter() - started)
    return best


def test_import_finite_memory_api_costs_under_150_ms_over_a_bare_interpreter() -> None:
    overhead = best_time("import finite_memory_api") - best_time("pass")
    assert overhead < 0.150, f"import finite_memory_api took {overhead * 1000:.0f} ms over a bare interpreter"
    loaded = run("import sys, finite_memory_api; print(sorted(m for m in sys.modules if 'httpx' in m))")
    assert loaded.strip() == "[]", "httpx loads with the first backend, not with the package"


def test_core_and_its_cli_load_no_httpx() -> None:
    code = (
        "import sys, finite_memory\n"
        "from finite_memory import Chat, Memory, load_backend, BackendError\n"
        "from finite_memory.cli import build_parser\n"
        "build_parser().parse_args(['chat', '--backend', 'openai:m'])\n"
        "print('httpx' in sys.modules)"
    )
    assert run(code).strip() == "False"


def test_an_api_only_process_stays_under_40_mb_after_a_chat_turn(server: FakeLLMServer) -> None:
    out = api_only_turn(server.url)
    assert out["text"] == "echo: helloecho: again"
    assert "httpx" in out["modules"] and "torch" not in out["modules"]
    assert out["rss_kib"] < 40 * 1024, f"RSS {out['rss_kib'] / 1024:.1f} MiB"
