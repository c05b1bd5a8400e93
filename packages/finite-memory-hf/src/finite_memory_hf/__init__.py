"""Finite Memory for local Hugging Face models.

``load_backend("hf:<folder or model id>")`` gives an :class:`HFBackend`: budgets counted
in the model's own chat-template tokens and a KV cache reused across turns. Neural
plug-ins register by name: the ``minilm`` embedder, the ``attention`` scorer and the
``model`` summarizer. ``torch`` and ``transformers`` load on first use, not on import.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing (and re) would double this module's cost
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "HFBackend": ".backend",
    "ChatTemplateTokenizer": "._tokenizer",
    "MiniLMEmbedder": ".embedders",
    "AttentionScorer": ".scorers",
    "ModelSummarizer": ".summarizers",
    "build_tiny_model": ".testing",
}

__all__ = [
    "AttentionScorer",
    "ChatTemplateTokenizer",
    "HFBackend",
    "MiniLMEmbedder",
    "ModelSummarizer",
    "build_tiny_model",
]

if TYPE_CHECKING:
    from ._tokenizer import ChatTemplateTokenizer
    from .backend import HFBackend
    from .embedders import MiniLMEmbedder
    from .scorers import AttentionScorer
    from .summarizers import ModelSummarizer
    from .testing import build_tiny_model


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'finite_memory_hf' has no attribute {name!r}")
    value = getattr(import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
