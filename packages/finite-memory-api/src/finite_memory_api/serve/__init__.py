"""``finite-memory serve``: an OpenAI-compatible proxy that keeps each session's memory.

>>> from finite_memory_api.serve import ServeConfig, create_app
>>> config = ServeConfig(backend="openai:gpt-4o-mini", max_tokens=8192, store="sqlite:///chats.db")
>>> app = create_app(config)  # doctest: +SKIP

``app`` is an ASGI application (Starlette): run it with uvicorn, or let
``finite-memory serve`` do it. Needs the extra: ``pip install "finite-memory-api[serve]"``.
Importing this package loads neither Starlette nor uvicorn; ``create_app`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._config import SESSION_HEADER, ServeConfig

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["SESSION_HEADER", "ServeConfig", "create_app"]


def create_app(config: ServeConfig) -> Starlette:
    """The proxy as an ASGI application (run it with uvicorn, or mount it in another app)."""
    from ._app import create_app as build

    return build(config)
