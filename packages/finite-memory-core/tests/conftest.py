"""Shared fixtures for core tests."""

from __future__ import annotations

import pytest

from finite_memory import Memory


def tool_call(call_id: str, name: str = "weather") -> dict[str, object]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


@pytest.fixture
def memory() -> Memory:
    return Memory(max_tokens=256, reserve_output=32, system="You are a helpful assistant.")
