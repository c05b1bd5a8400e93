"""Small builders shared by core tests (imported by name: keep module names unique across packages)."""

from __future__ import annotations


def tool_call(call_id: str, name: str = "weather") -> dict[str, object]:
    """An OpenAI-style tool call record."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
