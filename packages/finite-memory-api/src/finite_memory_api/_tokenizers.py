"""Choosing a backend's exact tokenizer from its ``tokenizer=`` and ``tokenize=`` options."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from finite_memory import Tokenizer

if TYPE_CHECKING:
    from ._http import HTTPBackend


def resolve_tokenizer(backend: HTTPBackend, tokenizer: Any, tokenize: Any) -> Tokenizer | None:
    """The tokenizer the options ask for, or ``None`` (the memory then estimates and calibrates)."""
    if tokenizer is not None and tokenize is not None:
        raise ValueError("give tokenizer= or tokenize=, not both")
    if tokenize is not None:
        from ._tokenize import ServerTokenizer

        root = backend.base_url.removesuffix("/v1")
        return ServerTokenizer(backend, f"{root}/tokenize", tokenize)
    if tokenizer is None:
        return None
    if tokenizer == "tiktoken":
        from ._tiktoken import TiktokenTokenizer

        return TiktokenTokenizer(backend.model)
    if isinstance(tokenizer, (str, Path)):
        from ._local import LocalTokenizer

        return LocalTokenizer(tokenizer)
    if isinstance(tokenizer, Tokenizer):
        return tokenizer
    raise TypeError(
        "tokenizer must be 'tiktoken', the path of a tokenizer.json (or its folder), or a Tokenizer, "
        f"not {type(tokenizer).__name__}"
    )
