"""``finite-memory serve``: an OpenAI-compatible proxy that keeps each session's memory.

>>> from finite_memory_api.serve import ServeConfig, create_app
>>> config = ServeConfig(backend="openai:gpt-4o-mini", max_tokens=8192, store="sqlite:///chats.db")
>>> app = create_app(config)  # doctest: +SKIP

``app`` is an ASGI application (Starlette): run it with uvicorn, or let
``finite-memory serve`` do it. Needs the extra: ``pip install "finite-memory-api[serve]"``.
Importing this package loads neither Starlette nor uvicorn; ``create_app`` does.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__all__ = ["SESSION_HEADER", "ServeConfig", "create_app"]

_EXPORTS = {"ServeConfig": "._config", "create_app": "._app", "SESSION_HEADER": "._app"}

if TYPE_CHECKING:
    from ._app import SESSION_HEADER, create_app
    from ._config import ServeConfig


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'finite_memory_api.serve' has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
