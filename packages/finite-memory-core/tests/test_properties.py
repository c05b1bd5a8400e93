"""Property tests: the memory's invariants hold for every installed policy and any conversation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finite_memory import Memory, Message, plugins

POLICIES = sorted(plugins("policies"))

small_text = st.text(max_size=40)
huge_text = st.builds(lambda piece, times: piece * times, st.text(min_size=1, max_size=6), st.integers(300, 2500))
texts = st.one_of(small_text, small_text, small_text, huge_text, st.just(""))


@st.composite
def conversations(draw: st.DrawFn) -> list[Message]:
    messages: list[Message] = []
    for turn in range(draw(st.integers(0, 25))):
        if draw(st.integers(0, 9)) == 0:
            messages.append(Message("system", draw(small_text)))
        messages.append(Message("user", draw(texts)))
        if draw(st.booleans()):
            ids = [f"call_{turn}_{i}" for i in range(draw(st.integers(1, 3)))]
            calls = [{"id": i, "type": "function", "function": {"name": "tool", "arguments": "{}"}} for i in ids]
            messages.append(Message("assistant", "", tool_calls=calls))
            messages.extend(Message("tool", draw(texts), tool_call_id=i) for i in ids)
        if draw(st.booleans()):
            messages.append(Message("assistant", draw(texts)))
    return messages


def check_invariants(memory: Memory, query: str | None) -> None:
    ctx = memory.context(query=query)
    assert ctx.tokens <= memory.max_tokens - memory.reserve_output
    assert ctx.tokens == memory.tokenizer.count_messages(ctx.messages)
    roles = [m.role for m in ctx.messages]
    first_other = next((i for i, r in enumerate(roles) if r != "system"), len(roles))
    assert "system" not in roles[first_other:], "system messages come first"
    if memory.system:
        assert ctx.messages[0].role == "system"
    calls_seen: set[str] = set()
    for message in ctx.messages:
        calls_seen.update(message.tool_call_ids)
        if message.role == "tool":
            assert message.tool_call_id in calls_seen, "a tool result never appears without its call"
    archived = {m.id: m for m in memory.messages}
    for message in ctx.messages:
        if message.id is not None:
            original = archived[message.id]
            assert message.content == original.content or "tokens cut by finite-memory" in message.content


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    conversation=conversations(),
    max_tokens=st.integers(64, 1500),
    reserve_share=st.floats(0, 0.5),
    system=st.one_of(st.none(), small_text.filter(bool), huge_text),
    query=st.one_of(st.none(), small_text),
)
def test_invariants_hold_for_every_policy(
    policy: str,
    conversation: list[Message],
    max_tokens: int,
    reserve_share: float,
    system: str | None,
    query: str | None,
) -> None:
    reserve = min(int(max_tokens * reserve_share), max_tokens - 32)
    memory = Memory(policy, max_tokens=max_tokens, reserve_output=reserve, system=system)
    for i, message in enumerate(conversation):
        fields: dict[str, Any] = {"tool_calls": message.tool_calls, "tool_call_id": message.tool_call_id}
        memory.add(message.role, message.content, **{k: v for k, v in fields.items() if v is not None})
        if i % 7 == 0:
            check_invariants(memory, query)
    check_invariants(memory, query)
    assert [(m.role, m.content) for m in memory.messages] == [(m.role, m.content) for m in conversation]
    assert [m.id for m in memory.messages] == list(range(len(conversation)))
