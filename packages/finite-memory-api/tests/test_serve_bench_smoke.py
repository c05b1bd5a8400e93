"""``benchmarks/bench_serve.py`` still runs end to end against today's proxy (its figures are not judged here).

The benchmark drives the real ``finite-memory serve`` and reads the store back; a change of
a public or wire-level API that breaks it should fail here, not first under ``nox -s bench``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "bench_serve.py"


def test_bench_serve_runs_and_loses_nothing() -> None:
    # one turn a session and round, a fast upstream: the smallest run that takes every path it measures
    smoke = ["--rounds", "1", "--turns", "1", "--first-ms", "5", "--token-ms", "1", "--think-ms", "20"]
    done = subprocess.run(
        [sys.executable, str(BENCH), *smoke],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    assert "0 lost, 0 duplicated, 0 out of order (target 0, 0, 0)  OK" in done.stdout
    assert "50 sessions at once" in done.stdout and "first token" in done.stdout
