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


class HashingEmbedder:
    """A dependency-free embedder: feature hashing of words, word pairs and character n-grams.

    Each text becomes a signed bag of hashed features (stemmed words, adjacent word
    pairs, character n-grams of each word for spelling variants), folded into ``dim``
    buckets and scaled to unit length. Hashing uses CRC-32, so vectors are the same in
    every process. It captures lexical overlap with some tolerance for morphology and
    word order, not meaning: install ``finite-memory-hf`` for a neural embedder.

    Its ``fusion_weight`` (the weight retrieval policies give its ranking beside BM25's)
    is 0: with no notion of how rare a word is, it ranks evidence well below BM25
    (on LoCoMo, recall@10 0.42 against 0.70) and fusing it in only lowered recall. So
    by default it measures similarity between turns (for MMR's diversity) and ranks
    alone only when no query word is in the lexical index.

    Args:
        dim: the vector size (a power of two, 16 to 4096). Default 256.
        ngram: the character n-gram length (2 to 6). Default 4.
    """

    name = "hashing"
    fusion_weight = 0.0

    def __init__(self, dim: int = 256, ngram: int = 4) -> None:
        if not isinstance(dim, int) or dim < 16 or dim > 4096 or dim & (dim - 1):
            raise ValueError(f"dim must be a power of two between 16 and 4096, got {dim!r}")
        if not isinstance(ngram, int) or not 2 <= ngram <= 6:
            raise ValueError(f"ngram must be an int between 2 and 6, got {ngram!r}")
        self.dim = dim
        self.ngram = ngram
        if (dim, ngram) != (256, 4):
            self.name = None  # type: ignore[assignment]  # not rebuilt by name alone

    def __repr__(self) -> str:
        return f"HashingEmbedder(dim={self.dim}, ngram={self.ngram})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-length vectors for ``texts`` (all zeros for a text with no words)."""
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[float]:
        from zlib import crc32

        from ._terms import terms

        vector = [0.0] * self.dim
        mask = self.dim - 1
        n = self.ngram
        previous = None
        for term in terms(text):
            features = [(term, 1.0)]
            if previous is not None:
                features.append((previous + " " + term, 0.5))
            padded = f"<{term}>"
            features.extend((padded[i : i + n], 0.25) for i in range(max(1, len(padded) - n + 1)))
            for feature, weight in features:
                h = crc32(feature.encode())
                vector[h & mask] += weight if h & 0x80000000 else -weight
            previous = term
        norm = sum(x * x for x in vector) ** 0.5
        return [x / norm for x in vector] if norm else vector
