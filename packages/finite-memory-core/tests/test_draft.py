"""Policy state on a draft: a failed turn moves no summary and no window; a good one commits with its messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from finite_memory import BackendError, Chat, Memory, Message, plugins
from finite_memory._extractive import Extractive
from finite_memory.policies import RollingSummary
from finite_memory.testing import EchoBackend

POLICIES = sorted(plugins("policies"))


def talk(memory: Memory, turns: int, start: int = 0) -> None:
    for i in range(start, start + turns):
        memory.add("user", f"Turn {i}: my friend Nadia{i} flew to Osaka on 12 May {1900 + i}, by the way.")
        memory.add("assistant", f"Noted, Nadia{i} and Osaka ({i}).")


def state_of(memory: Memory) -> dict[str, object]:
    return memory.policy.state()


@pytest.mark.parametrize("policy", POLICIES)
def test_building_a_context_changes_nothing_until_it_is_committed(policy: str) -> None:
    memory = Memory(policy, max_tokens=300, reserve_output=0)
    talk(memory, 40)
    before = state_of(memory)
    pending = Message("user", "Where did Nadia3 fly?")
    first = memory._build(pending.content, [pending])
    assert state_of(memory) == before  # a draft, not a change
    assert memory._build(pending.content, [pending]).messages == first.messages  # so it is repeatable
    memory.extend([pending, Message("assistant", "To Osaka.")], context=first)
    assert len(memory) == 82
    if first._draft is not None:
        assert state_of(memory) == first._draft.state != before  # committed with the turn


@pytest.mark.parametrize("policy", ["rolling_summary", "hybrid", "sliding"])
def test_a_failed_turn_leaves_the_summary_and_the_window_as_they_were(policy: str) -> None:
    options = {"summary_share": 0.3} if policy == "hybrid" else {}
    memory = Memory(policy, max_tokens=400, reserve_output=40, **options)
    chat = Chat(EchoBackend(), memory)
    for i in range(12):
        chat.send(f"Day {i}: I met Ravi{i} in Porto on 2 May 20{i:02d}, and we talked for hours.")
    # find a turn whose context moves the state (a fold or an eviction), then fail exactly that turn
    text = "Day 12: I met Ravi12 in Porto on 2 May 2012, and we talked for hours."
    for j in range(12, 40):
        text = f"Day {j}: I met Ravi{j} in Porto on 2 May 20{j:02d}, and we talked for hours."
        draft = memory._build(text, [Message("user", text)])._draft
        if draft is not None and draft.state.get("start") != state_of(memory).get("start"):
            break
        chat.send(text)
    before, messages = state_of(memory), memory.messages
    expected = memory._build(text, [Message("user", text)]).messages
    failing = Chat(EchoBackend(fail_after=0), memory)
    with pytest.raises(BackendError):
        failing.send(text)
    assert state_of(memory) == before and memory.messages == messages
    with pytest.raises(BackendError):
        list(Chat(EchoBackend(fail_after=2), memory).stream(text))
    assert state_of(memory) == before and memory.messages == messages
    chat.send(text)  # the retry sees exactly the context the failed turn saw
    assert chat.backend.calls[-1] == expected  # type: ignore[attr-defined]
    assert state_of(memory) != before


def test_context_commits_at_once_for_a_direct_caller() -> None:
    memory = Memory("rolling_summary", max_tokens=300, reserve_output=0, summary_tokens=64)
    talk(memory, 30)
    assert "text" not in state_of(memory)
    ctx = memory.context(query="Osaka")
    assert state_of(memory)["text"] and ctx.stats.summary_tokens > 0
    assert memory.context(query="Osaka").messages == ctx.messages  # nothing moved since


def test_a_stale_draft_commits_nothing() -> None:
    memory = Memory("sliding", max_tokens=200, reserve_output=0)
    talk(memory, 20)
    pending = Message("user", "next")
    old = memory._build("next", [pending])
    memory.context()  # another context commits first
    committed = state_of(memory)
    memory.extend([pending], context=old)
    assert state_of(memory) == committed
    other = Memory("sliding", max_tokens=200, reserve_output=0)
    talk(other, 20)
    foreign = other._build("x", [Message("user", "x")])
    memory.extend([Message("user", "y")], context=foreign)  # a context of another memory: no effect
    assert state_of(memory) == committed
    with pytest.raises(TypeError, match="context must be a Context"):
        memory.extend([Message("user", "z")], context="ctx")  # type: ignore[arg-type]


def test_the_state_is_written_with_the_turn_in_one_transaction(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chats.db'}"
    memory = Memory("rolling_summary", max_tokens=300, reserve_output=40, store=url, session="s", summary_tokens=64)
    chat = Chat(EchoBackend(), memory)
    for i in range(25):
        chat.send(f"Day {i}: I met Ravi{i} in Porto on 2 May 20{i:02d}.")
    stored = memory.store.read_state("s")
    assert stored is not None and '"text"' in stored
    with Memory(
        "rolling_summary", max_tokens=300, reserve_output=40, store=url, session="s", summary_tokens=64
    ) as again:
        assert state_of(again) == state_of(memory)  # written with the turn's messages, not with a later add
    with pytest.raises(BackendError):
        Chat(EchoBackend(fail_after=0), memory).send("this turn fails")
    assert memory.store.read_state("s") == stored
    memory.close()


class Slow(Extractive):
    """The extractive summarizer, taking ``seconds`` per call (a model on a slow machine)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.threads: set[str] = set()

    def summarize(self, previous: str, evicted: Sequence[str], max_tokens: int, count: Callable[[str], int]) -> str:
        self.threads.add(threading.current_thread().name)
        time.sleep(self.seconds)
        return super().summarize(previous, evicted, max_tokens, count)


def test_max_policy_ms_holds_while_a_summarizer_runs_and_its_work_is_not_lost() -> None:
    slow = Slow(0.3)
    memory = Memory(RollingSummary(slow, summary_tokens=64), max_tokens=300, reserve_output=0, max_policy_ms=50)
    talk(memory, 30)
    start = time.perf_counter()
    ctx = memory.context()
    elapsed = time.perf_counter() - start
    assert ctx.stats.fallback is True and elapsed < 0.25  # the turn did not wait for the summarizer
    assert ctx.tokens <= memory.budget and "text" not in state_of(memory)
    assert any(name.startswith("finite-memory-summary") for name in slow.threads)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline:  # the summary finishes in the background, chunk by chunk
        time.sleep(0.35)
        ctx = memory.context()
        if not ctx.stats.fallback:
            break
    assert ctx.stats.fallback is False and ctx.stats.summary_tokens > 0 and state_of(memory)["text"]
    unbounded = Memory(RollingSummary(Slow(0.0), summary_tokens=64), max_tokens=300, reserve_output=0)
    talk(unbounded, 30)
    assert unbounded.context().messages == ctx.messages  # the same summary as without a deadline
