"""Summarizers: fold evicted turns into a bounded running summary, for ``rolling_summary``.

Registered in the ``finite_memory.summarizers`` entry-point group. Core ships a
dependency-free extractive default; ``finite-memory-hf`` adds a model summarizer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Summarizer(Protocol):
    """Folds ``evicted`` texts into ``previous``, returning a summary of at most
    ``max_tokens`` tokens as measured by ``count``."""

    def summarize(self, previous: str, evicted: Sequence[str], max_tokens: int, count: Callable[[str], int]) -> str: ...
