"""Fixtures for the API backend tests: a real loopback server speaking both chat APIs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _api_server import FakeLLMServer


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight chat model with a locally trained tokenizer, built once (no download)."""
    from finite_memory_hf.testing import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny", max_position_embeddings=2048)


@pytest.fixture(scope="session")
def served(tiny_model: Path) -> Iterator[Any]:
    """``transformers serve`` with the tiny model on 127.0.0.1, shared by the real-server tests."""
    from _transformers_serve import start

    server = start(tiny_model)
    yield server
    server.stop()


@pytest.fixture
def upstream() -> Iterator[Any]:
    """The fake upstream for the proxy tests (``GET /v1/models`` too)."""
    from _serve_helpers import ServeUpstream

    with ServeUpstream() as running:
        yield running


@pytest.fixture
def make_proxy(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Start ``finite-memory serve``'s app in a thread in front of ``upstream``: ``make_proxy(**config)``."""
    from _serve_helpers import UPSTREAM_KEY, ThreadProxy

    monkeypatch.setenv("OPENAI_API_KEY", UPSTREAM_KEY)
    started: list[Any] = []

    def make(**config: Any) -> Any:
        proxy = ThreadProxy(upstream.url, **config).__enter__()
        started.append(proxy)
        return proxy

    yield make
    for proxy in reversed(started):
        proxy.__exit__()
