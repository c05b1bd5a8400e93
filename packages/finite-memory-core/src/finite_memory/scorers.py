"""Scorers: how much a message matters, for the ``importance`` policy.

Registered in the ``finite_memory.scorers`` entry-point group. Core ships a
dependency-free default; ``finite-memory-hf`` adds an attention-based one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Scorer(Protocol):
    """Scores texts by importance (higher keeps longer), a batch at a time.

    The policy calls ``score`` once per archived message and caches the result.
    """

    def score(self, texts: Sequence[str]) -> list[float]: ...
