"""The layout engine: continuity in every policy, a stable-first prompt, low-water steps, an honest stable_prefix."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from finite_memory import Memory, Message, load_policy, plugins
from finite_memory.eval.chat import _key, replay_chat
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.synthetic import generate_conversation
from finite_memory.policies import Hybrid, RollingSummary, Semantic
from finite_memory.policies._summary import HEADER

POLICIES = sorted(plugins("policies"))


def chat_turns(memory: Memory, turns: int, start: int = 0) -> list[Any]:
    """Build each turn's context with its user message pending, then archive the turn; return the contexts."""
    contexts = []
    for i in range(start, start + turns):
        user = Message("user", f"Turn {i}: my cousin Ilse{i % 7} baked {i} rye loaves in Ghent, on 3 May.")
        ctx = memory._build(user.content, [user])
        contexts.append(ctx)
        memory.extend([user, Message("assistant", f"Lovely, {i} loaves from Ilse{i % 7}.")], context=ctx)
    return contexts


def sent(messages: list[Message]) -> list[tuple[Any, ...]]:
    """What a backend receives (a pending message has no id yet; archived, it has one)."""
    return [_key(m) for m in messages]


def turns_in(messages: list[Message]) -> list[int]:
    order: list[int] = []
    for m in messages:
        if m.turn is not None and (not order or order[-1] != m.turn):
            order.append(m.turn)
    return order


@pytest.mark.parametrize("policy", POLICIES)
def test_every_policy_keeps_the_last_three_exchanges(policy: str) -> None:
    memory = Memory(policy, max_tokens=500, reserve_output=50)
    for i, ctx in enumerate(chat_turns(memory, 40)):
        wanted = {n for n in range(max(0, i - 3), i)}
        assert wanted <= set(turns_in(ctx.messages)), (i, turns_in(ctx.messages))
        assert ctx.tokens <= memory.budget


@pytest.mark.parametrize("policy", POLICIES)
def test_the_stable_prefix_is_kept_by_the_next_context(policy: str) -> None:
    memory = Memory(policy, max_tokens=1600, reserve_output=50, system="Be brief.")
    contexts = chat_turns(memory, 60)
    kept = promised = 0
    for a, b in itertools.pairwise(contexts):
        assert 1 <= a.stable_prefix <= len(a.messages)  # the system prompt at least
        promised += a.stable_prefix > 1
        kept += sent(b.messages)[: a.stable_prefix] == sent(a.messages)[: a.stable_prefix]
    assert kept >= 0.9 * (len(contexts) - 1)  # a prediction: a long reply may evict earlier than expected
    if policy in ("semantic", "importance"):  # what the query wants fills the room: only the system prompt stays
        assert promised <= 1  # (and the first question, while there is nothing to choose from)
    else:  # a window that stays in place: most turns promise more than the system prompt
        assert promised >= 0.5 * (len(contexts) - 1)


@pytest.mark.parametrize("policy", ["sliding", "rolling_summary"])
def test_between_evictions_the_previous_prompt_is_a_prefix_of_the_next(policy: str) -> None:
    memory = Memory(policy, max_tokens=500, reserve_output=50, low_water=0.5)
    contexts = chat_turns(memory, 50)[1:]
    evictions = 0
    for a, b in itertools.pairwise(contexts):
        if turns_in(b.messages)[0] == turns_in(a.messages)[0]:
            assert sent(b.messages)[: len(a.messages)] == sent(a.messages)  # the new turn appended, nothing moved
        else:
            evictions += 1
    assert 2 <= evictions <= 12  # in steps, not every turn


def test_the_context_is_laid_out_stable_first() -> None:
    memory = Memory(
        "hybrid",
        max_tokens=900,
        reserve_output=0,
        system="Be brief.",
        sink_turns=1,
        summary_share=0.15,
        low_water=0.5,
        retrieval_tokens=300,  # at most half the budget: the window keeps the rest
    )
    chat_turns(memory, 60)
    memory.add("user", "Where did Ilse3 bake the 45 loaves?")
    ctx = memory.context(query="Where did Ilse3 bake the 45 loaves?")
    roles = [m.role for m in ctx.messages]
    assert ctx.messages[0].content == "Be brief." and ctx.messages[1].content.startswith(HEADER)
    assert "system" not in roles[2:]
    order = turns_in(ctx.messages)
    assert order[0] == 0  # the pinned (sink) turn
    newest, rest = order[-1], order[1:-1]
    start = memory.policy.state()["start"]
    window, tail = [n for n in rest if n >= start], [n for n in rest if n < start]
    assert rest == window + tail
    assert window == list(range(start, newest))  # the window: every turn up to the newest, in order
    assert tail == sorted(tail)  # then what the query retrieved, in order
    assert 45 in tail


def test_retrieval_takes_at_most_retrieval_tokens() -> None:
    for cap in (100, 300):
        memory = Memory("semantic", max_tokens=2000, reserve_output=0, retrieval_tokens=cap)
        chat_turns(memory, 80)
        ctx = memory.context(query="Ilse3 rye loaves Ghent")
        start = memory.policy.state()["start"]
        tail = [m for t in memory.turns if t.number < start for m in t.messages if m.id in ctx.included]
        assert 0 < sum(memory._counter.message(m) for m in tail) <= cap  # retrieval packs single messages


def test_without_a_low_water_mark_the_window_slides_every_turn() -> None:
    memory = Memory("sliding", max_tokens=400, reserve_output=0, low_water=None)
    firsts = [turns_in(ctx.messages)[0] for ctx in chat_turns(memory, 40)[12:]]
    assert all(b > a for a, b in itertools.pairwise(firsts))
    assert all(ctx.stable_prefix == 0 for ctx in chat_turns(memory, 3, start=40))


@pytest.mark.parametrize("policy", POLICIES)
def test_load_state_of_nothing_resets_the_policy(policy: str) -> None:
    memory = Memory(policy, max_tokens=300, reserve_output=0)
    chat_turns(memory, 30)
    memory.context(query="rye")
    assert memory.policy.state()
    memory.policy.load_state({})
    assert memory.policy.state() == {}
    fresh = Memory(policy, max_tokens=300, reserve_output=0)
    chat_turns(fresh, 30)
    fresh.policy.load_state({})
    assert memory.context(query="rye").messages == fresh.context(query="rye").messages


def test_hybrid_composes_semantic_and_rolling_summary() -> None:
    hybrid = Hybrid(embedder="hashing", neighbours=2, summary_tokens=128, recent_turns=2)
    assert isinstance(hybrid.semantic, Semantic) and hybrid.semantic.neighbours == 2
    assert isinstance(hybrid.rolling_summary, RollingSummary) and hybrid.rolling_summary.summary_tokens == 128
    options = hybrid.options()
    assert options["neighbours"] == 2 and options["summary_tokens"] == 128 and options["recent_turns"] == 2
    assert "semantic" not in options and load_policy("hybrid", **options).options() == options
    nested = Hybrid(semantic={"candidates": 8}, rolling_summary=RollingSummary(summary_tokens=64))
    assert nested.semantic.candidates == 8 and nested.summary.max_tokens == 64
    with pytest.raises(TypeError, match=r"unknown hybrid options: recent_share; allowed: .*retrieval_tokens"):
        Hybrid(recent_share=0.1)
    with pytest.raises(TypeError, match="set them there"):
        Hybrid(semantic=Semantic(), candidates=4)
    with pytest.raises(TypeError, match="must be a Semantic or a dict"):
        Hybrid(semantic=3)  # type: ignore[arg-type]


def test_a_chat_replay_measures_continuity_and_prefix_reuse() -> None:
    sample = generate_conversation(4, sessions=6)
    figures = {}
    for policy, options in (("sliding", {}), ("sliding", {"low_water": None}), ("semantic", {"recent_turns": 0})):
        memory = Memory(policy, max_tokens=512, reserve_output=0, **options)
        figures[policy, bool(options)] = replay_chat(memory, dialogue(sample))
    low_water, plain, bare = figures["sliding", False], figures["sliding", True], figures["semantic", True]
    assert low_water.continuity == plain.continuity == 1.0
    assert low_water.reuse_median > 0.8 > 0.1 > plain.reuse_median  # the plain window shifts every turn
    assert bare.continuity < 0.5  # retrieval alone loses the last exchanges
    assert len(low_water.continuous) == sum(line.role == "user" for line in dialogue(sample))
