"""Helpers shared by the benchmarks: the verdict printed beside a target, and import timing."""

from __future__ import annotations

import subprocess
import sys
import time


def verdict(ok: bool) -> str:
    """What a benchmark prints beside a target: ``OK`` or ``MISSED``."""
    return "OK" if ok else "MISSED"


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0.99 for p99) of ``values``; NaN when there are none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


def row(label: str, value: str, baseline: str = "", ratio: str = "") -> None:
    """One line of a figure table: label, our figure, the baseline's (or the target), the ratio or verdict."""
    print(f"  {label:<44} {value:>16} {baseline:>22} {ratio:>10}")


def import_ms(statement: str, repeats: int = 15) -> float:
    """The best wall time, in ms, of a fresh interpreter running ``statement`` (``"pass"`` for the bare one)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", statement], check=True)
        best = min(best, time.perf_counter() - start)
    return best * 1000
