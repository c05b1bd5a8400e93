"""Finite Memory backends for OpenAI-compatible servers and Anthropic, over httpx.

>>> from finite_memory import Chat, Memory
>>> chat = Chat("openai:gpt-4o-mini", Memory(max_tokens=8192))   # doctest: +SKIP
>>> chat.send("Hello!").text                                      # doctest: +SKIP

The backends register themselves as the ``openai`` and ``anthropic`` schemes of
:func:`finite_memory.load_backend`. Names load on first use, so importing this package
costs next to nothing; httpx loads with the first backend.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing (and re) would double this module's cost
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "OpenAIBackend": ".openai",
    "AnthropicBackend": ".anthropic",
    "Retry": "._retry",
    "Limits": "._limits",
    "ServerTokenizer": "._tokenize",
    "TiktokenTokenizer": "._tiktoken",
    "LocalTokenizer": "._local",
}

__all__ = [
    "AnthropicBackend",
    "Limits",
    "LocalTokenizer",
    "OpenAIBackend",
    "Retry",
    "ServerTokenizer",
    "TiktokenTokenizer",
]

if TYPE_CHECKING:
    from ._limits import Limits
    from ._local import LocalTokenizer
    from ._retry import Retry
    from ._tiktoken import TiktokenTokenizer
    from ._tokenize import ServerTokenizer
    from .anthropic import AnthropicBackend
    from .openai import OpenAIBackend


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'finite_memory_api' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
