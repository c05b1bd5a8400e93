"""Shared builders for the durability tests: a conversation with every kind of message."""

from __future__ import annotations

from finite_memory import Memory
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.synthetic import generate_conversation


def fill(memory: Memory, *, sessions: int = 4, seed: int = 3) -> Memory:
    """Replay a seeded synthetic conversation, with a tool call and a system note in it."""
    sample = generate_conversation(seed, sessions=sessions)
    for i, line in enumerate(dialogue(sample)):
        memory.add(line.role, line.content, meta={"dia_id": line.dia_id, "date_time": line.date_time})
        if i == 5:
            call = {"id": f"call_{i}", "type": "function", "function": {"name": "weather", "arguments": '{"q": 1}'}}
            memory.add("assistant", "", tool_calls=[call])
            memory.add("tool", "18 C, sunny", tool_call_id=f"call_{i}", meta={"source": "api"})
        if i == 9:
            memory.add("system", "The user prefers short answers.")
        if i == 12:
            memory.add("assistant", "Noted.", name="helper")
    return memory


def questions(seed: int = 3, sessions: int = 4) -> list[str]:
    sample = generate_conversation(seed, sessions=sessions)
    return [qa["question"] for qa in sample["qa"]] + ["Where do I live?", ""]


def same_context(a: Memory, b: Memory, query: str | None) -> None:
    ca, cb = a.context(query=query), b.context(query=query)
    assert cb.messages == ca.messages
    assert cb.included == ca.included
    assert cb.tokens == ca.tokens
    assert cb.stats.dropped == ca.stats.dropped
