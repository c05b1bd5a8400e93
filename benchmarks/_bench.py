"""Helpers shared by the benchmarks: the verdict printed beside a target, and import timing."""

from __future__ import annotations

import subprocess
import sys
import time


def verdict(ok: bool) -> str:
    """What a benchmark prints beside a target: ``OK`` or ``MISSED``."""
    return "OK" if ok else "MISSED"


def import_ms(statement: str, repeats: int = 15) -> float:
    """The best wall time, in ms, of a fresh interpreter running ``statement`` (``"pass"`` for the bare one)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        best = min(best, time.perf_counter() - start)
    return best * 1000
