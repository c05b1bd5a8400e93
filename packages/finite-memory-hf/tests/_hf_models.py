"""Helpers for the hf tests (imported by name: keep this module name unique across packages)."""

from __future__ import annotations

from typing import Any

import torch

from finite_memory_hf import HFBackend


def cache_matches_fresh_prefill(backend: HFBackend, atol: float = 1e-4) -> bool:
    """Whether the backend's kept KV cache equals a fresh forward pass over the tokens it claims to hold."""
    ids = backend.cached_tokens
    kept = backend._kv.cache
    if not ids:
        return kept is None
    with torch.inference_mode():
        fresh = backend.model(input_ids=torch.tensor([ids]), use_cache=True).cache
    return all(
        a.keys.shape == b.keys.shape
        and torch.allclose(a.keys, b.keys, atol=atol)
        and torch.allclose(a.values, b.values, atol=atol)
        for a, b in zip(kept.layers, fresh.layers, strict=True)
    )


def template_ids(backend: HFBackend, messages: list[Any]) -> list[int]:
    """The prompt ids through transformers' own ``apply_chat_template(tokenize=True)`` path."""
    from finite_memory_hf._tokenizer import to_template_dict

    out = backend.tokenizer.hf.apply_chat_template(
        [to_template_dict(m) for m in messages], add_generation_prompt=True, tokenize=True
    )
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)
