"""The KV cache kept across turns: which tokens it holds, and how to fit it to a new prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: The shortest run of old tokens worth moving in attention-sink mode.
MIN_SPLICE = 16


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def find_run(haystack: Sequence[int], needle: Sequence[int], start: int) -> tuple[int, int]:
    """The longest run of ``needle``'s beginning found in ``haystack`` at or after ``start``.

    Returns ``(offset, length)``; ``(start, 0)`` when ``needle[0]`` never occurs.
    """
    best = (start, 0)
    if not needle:
        return best
    first = needle[0]
    for offset in range(start, len(haystack)):
        if haystack[offset] != first:
            continue
        length = common_prefix(haystack[offset:], needle)
        if length > best[1]:
            best = (offset, length)
    return best


@dataclass
class Reuse:
    """How a turn's prompt met the kept cache: ``reused`` tokens served, ``moved`` of them by a splice."""

    reused: int
    moved: int = 0


class KVState:
    """A model's KV cache and the exact token ids it holds.

    ``ids`` is ``None`` while a forward pass is writing to the cache: if that pass
    fails, the cache is dropped and the next turn starts from scratch, so a cache is
    never used for tokens it does not hold.
    """

    def __init__(self, model: Any, *, attention_sink: bool = False) -> None:
        self.model = model
        self.attention_sink = attention_sink
        self.cache: Any = None
        self.ids: list[int] | None = []

    def clear(self) -> None:
        self.cache = None
        self.ids = []

    def fit(self, prompt: Sequence[int]) -> Reuse:
        """Crop (or, in attention-sink mode, splice) the cache to serve the start of ``prompt``.

        At least the prompt's last token is left to run, for the logits of the reply.
        """
        held = self.ids
        if self.cache is None or not held:  # nothing kept, or a pass failed half-way
            self.clear()
            return Reuse(0)
        keep = min(common_prefix(held, prompt), len(prompt) - 1)
        if self.attention_sink and keep < len(held):
            offset, length = find_run(held, prompt[keep:], keep + 1)
            length = min(length, len(prompt) - 1 - keep)
            if length >= MIN_SPLICE:
                self._splice(keep, offset, length)
                self.ids = list(prompt[: keep + length])
                return Reuse(keep + length, moved=length)
        if keep == 0:
            self.clear()
            return Reuse(0)
        if keep < len(held):
            try:
                self.cache.crop(keep - len(held))
            except (RuntimeError, ValueError, NotImplementedError):  # sliding-window or recurrent layers past rollback
                self.clear()
                return Reuse(0)
            self.ids = held[:keep]
        return Reuse(keep)

    def _splice(self, keep: int, offset: int, length: int) -> None:
        """Keep cache rows ``[0, keep)`` and ``[offset, offset + length)``, the latter moved back to ``keep``.

        Keys are stored rotated by their position (RoPE); moving a row back by ``d``
        positions rotates its key by ``-d``, as StreamingLLM does with its rolling window.
        Values carry no position and are kept as they are.
        """
        shift = offset - keep
        cos, sin = self._rotation(-shift)
        for layer in self.cache.layers:
            keys = torch.cat(
                [layer.keys[..., :keep, :], _rotate(layer.keys[..., offset : offset + length, :], cos, sin)], dim=-2
            )
            values = torch.cat([layer.values[..., :keep, :], layer.values[..., offset : offset + length, :]], dim=-2)
            layer.keys, layer.values = keys, values

    def _rotation(self, delta: int) -> tuple[torch.Tensor, torch.Tensor]:
        rotary = self.model.model.rotary_emb
        probe = torch.zeros(1, dtype=self.model.dtype, device=self.model.device)
        positions = torch.tensor([[delta]], device=self.model.device)
        cos, sin = rotary(probe, position_ids=positions)
        scaling = float(getattr(rotary, "attention_scaling", 1.0))  # cos and sin carry it: undo it for a pure rotation
        return cos / scaling, sin / scaling

    def run(self, tokens: Sequence[int]) -> torch.Tensor:
        """Feed ``tokens`` after those held and return the logits of the last one.

        While the pass runs, ``ids`` is ``None``: a pass that fails leaves a cache that
        the next turn drops instead of trusting.
        """
        held = self.ids
        if held is None:
            raise RuntimeError("the KV cache was left half-written by a failed pass; call fit() first")
        if self.cache is None:
            self.cache = _new_cache(self.model.config)
        self.ids = None
        device = self.model.device
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.tensor([list(tokens)], device=device),
                cache=self.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        self.ids = [*held, *tokens]
        return out.logits[0, -1]


def _new_cache(config: Any) -> Any:
    """An empty cache that can be cropped back to any earlier length.

    Attention layers get full (not sliding-window) cache layers: a sliding-window layer
    keeps only its last window of tokens and cannot roll back past it, while a full
    layer with the model's sliding-window mask gives the same attention and can. Models
    with other layer kinds (recurrent, linear attention) get the cache their config asks
    for; rolling those back past the last turn fails and the turn runs from scratch.
    """
    from transformers import DynamicCache

    kinds = getattr(config.get_text_config(decoder=True), "layer_types", None) or ["full_attention"]
    if set(kinds) <= {"full_attention", "sliding_attention"}:
        return DynamicCache()
    return DynamicCache(config=config)


def _rotate(keys: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = keys.shape[-1] // 2
    rotated_half = torch.cat([-keys[..., half:], keys[..., :half]], dim=-1)
    return keys * cos.to(keys.dtype) + rotated_half * sin.to(keys.dtype)


def supports_attention_sink(model: Any) -> str | None:
    """Why attention-sink mode cannot work with ``model``, or ``None`` when it can."""
    rotary = getattr(getattr(model, "model", None), "rotary_emb", None)
    if rotary is None:
        return "it has no rotary position embedding (model.model.rotary_emb)"
    rope_type = getattr(rotary, "rope_type", "default")
    if rope_type not in ("default", "linear", "llama3", "yarn"):  # fixed frequencies: a shift is one rotation
        return f"its rotary embedding ({rope_type!r}) cannot be re-rotated by a fixed offset"
    if getattr(model.config, "sliding_window", None) or getattr(model.config, "mrope_section", None):
        return "it uses sliding-window or multimodal rotary attention"
    return None
