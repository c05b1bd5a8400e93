"""Shared fixtures for core tests."""

from __future__ import annotations

import pytest

from finite_memory import Memory


@pytest.fixture
def memory() -> Memory:
    return Memory(max_tokens=256, reserve_output=32, system="You are a helpful assistant.")
