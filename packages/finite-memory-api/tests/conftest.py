"""Fixtures for the API backend tests: a real loopback server speaking both chat APIs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
