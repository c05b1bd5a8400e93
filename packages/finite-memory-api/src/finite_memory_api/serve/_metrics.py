"""``GET /metrics``: counters and histograms in Prometheus's text format, summed over worker processes.

With several worker processes (``--workers``) each one writes a snapshot of its own
figures to a shared folder about once a second and whenever it answers a scrape; a
scrape sums every snapshot there, so it reports the whole server whichever worker it
reaches. Snapshots of workers that exited stay, so counters never go down.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: name -> (type, help, histogram bucket bounds or None)
METRICS: dict[str, tuple[str, str, tuple[float, ...] | None]] = {
    "finite_memory_requests_total": ("counter", "HTTP requests answered, by route and status.", None),
    "finite_memory_errors_total": ("counter", "Requests answered with an error, by kind.", None),
    "finite_memory_turns_total": ("counter", "Turns sent upstream, by mode (session or stateless).", None),
    "finite_memory_archived_messages_total": ("counter", "Messages archived in sessions.", None),
    "finite_memory_prompt_tokens_total": ("counter", "Prompt tokens the upstream reported.", None),
    "finite_memory_cached_prompt_tokens_total": (
        "counter",
        "Prompt tokens the upstream reported as served from its prefix cache.",
        None,
    ),
    "finite_memory_completion_tokens_total": ("counter", "Completion tokens the upstream reported.", None),
    "finite_memory_upstream_seconds": (
        "histogram",
        "Time from sending a turn upstream to its last byte.",
        (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    ),
    "finite_memory_context_tokens": (
        "histogram",
        "Tokens in the context sent upstream, as the memory counts them.",
        (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072),
    ),
    "finite_memory_policy_seconds": (
        "histogram",
        "Time the memory policy took to build a context.",
        (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
    ),
    "finite_memory_sessions_open": ("gauge", "Sessions held in this server's memory.", None),
    "finite_memory_cached_messages": ("gauge", "Archived messages held in this server's memory.", None),
    "finite_memory_turns_in_flight": ("gauge", "Turns waiting for the upstream right now.", None),
}

Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """This process's figures, and the text a scrape returns.

    Args:
        shared_dir: the folder where worker processes leave their snapshots; ``None``
            for a single process.
        gauges: name -> function giving the gauge's current value.
    """

    def __init__(self, shared_dir: str | None = None, gauges: dict[str, Callable[[], float]] | None = None) -> None:
        self.counters: dict[tuple[str, Labels], float] = {}
        self.histograms = {name: _Histogram(b) for name, (_, _, b) in METRICS.items() if b is not None}
        self.gauges = gauges or {}
        self._shared = Path(shared_dir) if shared_dir else None
        self._written = 0.0
        self._later: asyncio.TimerHandle | None = None

    def count(self, name: str, value: float = 1, **labels: str) -> None:
        key = (name, tuple(sorted(labels.items())))
        self.counters[key] = self.counters.get(key, 0) + value

    def observe(self, name: str, value: float) -> None:
        self.histograms[name].observe(value)

    # -- several processes ------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "counters": [[name, [list(p) for p in labels], value] for (name, labels), value in self.counters.items()],
            "histograms": {n: {"counts": h.counts, "sum": h.sum, "count": h.count} for n, h in self.histograms.items()},
            "gauges": {name: float(read()) for name, read in self.gauges.items()},
            "pid": os.getpid(),
        }

    def write_snapshot(self, *, every: float = 0.0) -> None:
        """Leave this process's snapshot in the shared folder (at most once per ``every`` seconds).

        A write held back by ``every`` is made later on the running event loop, so the
        last figures of a burst reach the other workers' scrapes within ``every`` seconds
        even when no request follows.
        """
        if self._shared is None:
            return
        wait = every - (time.monotonic() - self._written)
        if wait > 0:
            self._write_later(wait)
            return
        self._written = time.monotonic()
        target = self._shared / f"{os.getpid()}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.snapshot()), encoding="utf-8")
        os.replace(temporary, target)  # a reader never sees half a snapshot

    def _write_later(self, delay: float) -> None:
        if self._later is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a test, a shutdown): the next write carries the figures
            return

        def write() -> None:
            self._later = None
            self.write_snapshot()

        self._later = loop.call_later(delay, write)

    def _snapshots(self) -> list[dict[str, Any]]:
        if self._shared is None:
            return [self.snapshot()]
        self.write_snapshot()
        found = []
        for path in self._shared.glob("*.json"):
            try:
                found.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                continue  # a worker replacing its file right now: the next scrape reads it
        return found

    # -- the text format -------------------------------------------------------------------

    def render(self) -> str:
        """Every metric in Prometheus's text exposition format (version 0.0.4)."""
        counters: dict[tuple[str, Labels], float] = {}
        gauges: dict[str, float] = {}
        histograms = {name: _Histogram(h.bounds) for name, h in self.histograms.items()}
        for snap in self._snapshots():
            for name, labels, value in snap["counters"]:
                key = (name, tuple((k, v) for k, v in labels))
                counters[key] = counters.get(key, 0) + value
            for name, data in snap["histograms"].items():
                merged = histograms.get(name)
                if merged is not None and len(data["counts"]) == len(merged.counts):
                    merged.counts = [a + b for a, b in zip(merged.counts, data["counts"], strict=True)]
                    merged.sum += data["sum"]
                    merged.count += data["count"]
            if not _alive(snap.get("pid")):
                continue  # an exited worker's counters stay; its gauges no longer describe anything
            for name, value in snap["gauges"].items():
                gauges[name] = gauges.get(name, 0) + value
        lines: list[str] = []
        for name, (kind, help_text, _) in METRICS.items():
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} {kind}")
            if kind == "counter":
                rows = sorted((labels, v) for (n, labels), v in counters.items() if n == name)
                lines += [f"{name}{_labels(labels)} {_number(v)}" for labels, v in rows]
            elif kind == "gauge":
                lines.append(f"{name} {_number(gauges.get(name, 0))}")
            else:
                lines += _histogram_lines(name, histograms[name])
        return "\n".join(lines) + "\n"


def _alive(pid: Any) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    return True


def _histogram_lines(name: str, h: _Histogram) -> list[str]:
    lines = []
    running = 0
    for bound, count in zip((*h.bounds, float("inf")), h.counts, strict=True):
        running += count
        le = "+Inf" if bound == float("inf") else _number(bound)
        lines.append(f'{name}_bucket{{le="{le}"}} {running}')
    lines.append(f"{name}_sum {_number(h.sum)}")
    lines.append(f"{name}_count {h.count}")
    return lines


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
