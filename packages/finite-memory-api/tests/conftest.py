"""Fixtures for the API backend tests: a real loopback server speaking both chat APIs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _api_server import FakeLLMServer


@pytest.fixture
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as running:
        yield running
