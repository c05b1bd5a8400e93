"""Small builders shared by core tests (imported by name: keep module names unique across packages)."""

from __future__ import annotations

from hypothesis import strategies as st

#: Characters a message may hold: any valid Unicode but NUL (the utf-8 codec leaves out lone surrogates).
MESSAGE_CHARACTERS = st.characters(codec="utf-8", exclude_characters="\x00")


def message_text(*, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Any text a ``Message`` takes (``st.text`` draws NUL, which messages refuse: SQL text cannot hold it)."""
    return st.text(MESSAGE_CHARACTERS, min_size=min_size, max_size=max_size)


def tool_call(call_id: str, name: str = "weather") -> dict[str, object]:
    """An OpenAI-style tool call record."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
