"""Stores: where archives live. ``memory`` (in-process) is the default; plug-ins add more."""

from __future__ import annotations

from .._registry import load_plugin
from ._base import Store, StoreConflict, retained_from
from .memory import InMemoryStore

__all__ = ["InMemoryStore", "Store", "StoreConflict", "open_store", "retained_from"]


def open_store(spec: str | Store | None) -> Store:
    """A store from a URL (``"sqlite:///chats.db"``, ``"memory://"``) or an instance."""
    if spec is None:
        return InMemoryStore()
    if isinstance(spec, str):
        scheme, sep, _ = spec.partition(":")
        if not sep or not scheme:
            raise ValueError(f"a store is a URL such as 'sqlite:///chats.db' or 'memory://', got {spec!r}")
        return load_plugin("stores", scheme)(spec)  # type: ignore[no-any-return]
    if isinstance(spec, Store):
        return spec
    raise TypeError(f"store must be a URL string or a Store, not {type(spec).__name__}")
