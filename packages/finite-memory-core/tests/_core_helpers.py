"""Small builders shared by core tests (imported by name: keep module names unique across packages)."""

from __future__ import annotations


def tool_call(call_id: str, name: str = "weather") -> dict[str, object]:
    """An OpenAI-style tool call record."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


#: Everyday lines with no facts in them, for the turns around the ones a test asks about.
FILLER = [
    "The weather was grey all day and I stayed in.",
    "I cooked pasta again, nothing special.",
    "Work was busy with meetings until six.",
    "I watched a documentary about volcanoes last night.",
    "Traffic on the bridge was terrible this morning.",
    "My neighbour is repainting the fence this week.",
]


def filler(i: int) -> str:
    """The filler line of turn ``i`` (numbered, so no two turns are the same)."""
    return FILLER[i % len(FILLER)] + f" ({i})"
