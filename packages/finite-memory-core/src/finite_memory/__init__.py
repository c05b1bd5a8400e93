"""Finite Memory: keep an LLM conversation inside a fixed token budget, keeping what matters.

>>> from finite_memory import Memory
>>> mem = Memory(policy="sliding", max_tokens=256, reserve_output=32)
>>> _ = mem.add("user", "I moved to Lisbon in May.")
>>> mem.context(query="Where do I live?").tokens <= 224
True

Public names load on first use, so ``import finite_memory`` imports no third-party
module and costs next to nothing. Public submodules (``finite_memory.policies``,
``.stores``, ``.testing``, ``.compat``, ``.eval``...) load the same way, on first attribute access.
"""

from __future__ import annotations

from importlib import import_module

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: importing typing (and re) would double this module's cost
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_EXPORTS: dict[str, str] = {
    "Message": "._message",
    "Tokenizer": "._tokenizer",
    "ApproxTokenizer": "._tokenizer",
    "Turn": "._turns",
    "Context": "._context",
    "TurnStats": "._context",
    "Memory": "._memory",
    "Backend": "._backend",
    "Completion": "._backend",
    "SyncBackend": "._backend",
    "Chat": "._chat",
    "Reply": "._chat",
    "load_backend": "._registry",
    "load_policy": "._registry",
    "plugins": "._registry",
    "FiniteMemoryError": "._errors",
    "UnknownPluginError": "._errors",
    "BackendNotInstalled": "._errors",
    "BackendError": "._errors",
    "ContextLengthError": "._errors",
    "CheckpointError": "._errors",
    "StoreError": "._errors",
    "PolicyTimeout": "._errors",
}

__all__ = [
    "ApproxTokenizer",
    "Backend",
    "BackendError",
    "BackendNotInstalled",
    "Chat",
    "CheckpointError",
    "Completion",
    "Context",
    "ContextLengthError",
    "FiniteMemoryError",
    "Memory",
    "Message",
    "PolicyTimeout",
    "Reply",
    "StoreError",
    "SyncBackend",
    "Tokenizer",
    "Turn",
    "TurnStats",
    "UnknownPluginError",
    "load_backend",
    "load_policy",
    "plugins",
]

if TYPE_CHECKING:
    from ._backend import Backend, Completion, SyncBackend
    from ._chat import Chat, Reply
    from ._context import Context, TurnStats
    from ._errors import (
        BackendError,
        BackendNotInstalled,
        CheckpointError,
        ContextLengthError,
        FiniteMemoryError,
        PolicyTimeout,
        StoreError,
        UnknownPluginError,
    )
    from ._memory import Memory
    from ._message import Message
    from ._registry import load_backend, load_policy, plugins
    from ._tokenizer import ApproxTokenizer, Tokenizer
    from ._turns import Turn


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(import_module(module, __name__), name)
    elif name.isidentifier() and not name.startswith("_"):
        value = _submodule(name)  # importing it also sets it in globals(), as ``import finite_memory.x`` would
    else:
        raise AttributeError(f"module 'finite_memory' has no attribute {name!r}")
    globals()[name] = value
    return value


def _submodule(name: str) -> Any:
    try:
        return import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise  # the submodule exists but needs something missing: say what
        raise AttributeError(f"module 'finite_memory' has no attribute {name!r}") from None


def __dir__() -> list[str]:
    from os import scandir

    submodules = {
        entry.name.removesuffix(".py")
        for entry in scandir(__path__[0])
        if not entry.name.startswith("_") and (entry.name.endswith(".py") or entry.is_dir())
    }
    return sorted(set(globals()) | set(_EXPORTS) | submodules)
