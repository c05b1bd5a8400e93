"""The sliding window's low-water mark: evict in one step, then keep the prompt's beginning for many turns."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finite_memory import ApproxTokenizer, Memory, Message
from finite_memory.policies import Sliding


def talk(memory: Memory, turns: int, start: int = 0) -> list[list[int | None]]:
    """Add ``turns`` turns and return the turn numbers of each context built before a user message."""
    windows = []
    for i in range(start, start + turns):
        ctx = memory.context()
        windows.append(sorted({m.turn for m in ctx.messages if m.role != "system"}))
        memory.add("user", f"question {i}: what about the item number {i} on the list?")
        memory.add("assistant", f"answer {i}: item {i} is fine, and here is a longer reason for it.")
    return windows


def first_kept(windows: list[list[int | None]]) -> list[int | None]:
    return [w[0] if w else None for w in windows]


def test_plain_window_slides_every_turn_once_full() -> None:
    memory = Memory(Sliding(low_water=None), max_tokens=400, reserve_output=0, system="Be brief.")
    starts = first_kept(talk(memory, 40))
    full = starts[12:]
    assert all(b is not None and a is not None and b > a for a, b in itertools.pairwise(full))  # a new start every turn


def test_low_water_drops_in_one_step_then_keeps_its_start() -> None:
    memory = Memory(Sliding(low_water=0.5), max_tokens=400, reserve_output=0, system="Be brief.")
    windows = talk(memory, 40)
    starts = first_kept(windows)
    moves = sum(1 for a, b in itertools.pairwise(starts) if a != b)
    assert 1 <= moves <= 8, starts  # the plain window moves ~28 times here
    for a, b in itertools.pairwise(windows):
        if a and b and a[0] != b[0]:  # an eviction: about half the budget is dropped at once
            assert len(b) <= len(a) // 2 + 1
        elif a and b:  # no eviction: the previous context is a prefix of the next
            assert b[: len(a)] == a
    ctx = memory.context()
    assert ctx.tokens <= memory.budget


def test_low_water_window_is_always_contiguous_and_ends_at_the_newest_turn() -> None:
    memory = Memory(Sliding(low_water=0.6, sink_turns=1), max_tokens=300, reserve_output=20)
    for i in range(30):
        memory.add("user", f"question {i}: what about the item number {i} on the list?")
        memory.add("assistant", f"answer {i}: item {i} is fine, and here is a longer reason for it.")
        window = sorted({m.turn for m in memory.context().messages if m.turn is not None})
        assert window[0] == 0  # the sink turn
        rest = window[1:] if i else window
        assert rest == list(range(rest[0], i + 1))  # contiguous, up to the newest turn


def test_low_water_start_survives_a_checkpoint(tmp_path: Path) -> None:
    memory = Memory(Sliding(low_water=0.5), max_tokens=400, reserve_output=0)
    talk(memory, 25)
    before = memory.context(query="q")
    path = tmp_path / "m.json"
    memory.save(path)
    back = Memory.load(path)
    assert back.policy.options() == {"sink_turns": 0, "recent_turns": 3, "low_water": 0.5}
    assert [m.id for m in back.context(query="q").messages] == [m.id for m in before.messages]
    assert talk(back, 10, start=25) == talk(memory, 10, start=25)


def test_low_water_start_is_kept_by_a_sqlite_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    with Memory(Sliding(low_water=0.5), max_tokens=400, reserve_output=0, store=url, session="a") as memory:
        talk(memory, 25)
        expected = [m.id for m in memory.context().messages]
    with Memory(Sliding(low_water=0.5), max_tokens=400, reserve_output=0, store=url, session="a") as again:
        assert [m.id for m in again.context().messages] == expected


@pytest.mark.parametrize("bad", [0, 1, 1.5, -0.1, True, "0.5"])
def test_low_water_must_be_a_share_of_the_budget(bad: Any) -> None:
    with pytest.raises(ValueError, match="low_water must be None or a share of the budget between 0 and 1"):
        Sliding(low_water=bad)
    with pytest.raises(ValueError, match="low_water"):
        Memory("sliding", low_water=bad)


def test_a_huge_newest_turn_is_kept_even_above_the_low_water_mark() -> None:
    memory = Memory(Sliding(low_water=0.2), max_tokens=300, reserve_output=0)
    memory.add("user", "tiny " * 20)
    memory.add("user", "word " * 210)  # ~270 tokens: far above 20 % of the budget, within it
    memory.add("user", "now")
    ids = [m.content[:4] for m in memory.context().messages]
    assert ids == ["word", "now"]


long_text = st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=5), st.integers(50, 900))
texts = st.one_of(st.text(max_size=60), long_text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    contents=st.lists(st.tuples(st.sampled_from(["user", "assistant", "system"]), texts), max_size=40),
    max_tokens=st.integers(64, 1200),
    low_water=st.floats(0.05, 0.95),
    sinks=st.integers(0, 2),
)
def test_budget_invariant_holds_with_low_water(
    contents: list[tuple[str, str]], max_tokens: int, low_water: float, sinks: int
) -> None:
    memory = Memory(Sliding(sink_turns=sinks, low_water=low_water), max_tokens=max_tokens, reserve_output=0)
    plain = Memory(Sliding(sink_turns=sinks), max_tokens=max_tokens, reserve_output=0, tokenizer=ApproxTokenizer())
    for role, content in contents:
        memory.add(role, content)
        plain.add(role, content)
        ctx = memory.context()
        assert ctx.tokens <= memory.budget
        assert ctx.tokens == memory.tokenizer.count_messages(ctx.messages)
        # never keeps more than the plain window, which fills the budget greedily
        assert len(ctx.messages) <= len(plain.context().messages) or ctx.stats.truncated
        kept = [m for m in ctx.messages if m.role != "system"]
        assert all(isinstance(m, Message) for m in kept)
