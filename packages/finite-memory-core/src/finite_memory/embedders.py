"""Embedders: turn texts into vectors for the ``semantic`` and ``hybrid`` policies.

Registered in the ``finite_memory.embedders`` entry-point group. Core ships a
dependency-free default; ``finite-memory-hf`` adds neural ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to unit-length vectors of ``dim`` floats, a batch at a time.

    Policies call ``embed`` once per archived message (and once per query), and cache
    the result: an embedder never sees the same message twice.
    """

    dim: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...
