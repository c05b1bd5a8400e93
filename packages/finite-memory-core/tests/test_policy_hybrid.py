"""The hybrid policy: pinned + recent + retrieved + summary under one budget, and its knapsack."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import pytest
from _core_helpers import filler

from finite_memory import Memory
from finite_memory.policies._knapsack import knapsack
from finite_memory.policies._summary import HEADER
from finite_memory.policies.hybrid import Hybrid


def chat(memory: Memory, facts: dict[int, str], turns: int = 60, pinned: int | None = None) -> Memory:
    for i in range(turns):
        meta = {"pinned": True} if i == pinned else {}
        memory.add("user", facts.get(i, filler(i)), meta=meta)
        memory.add("assistant", f"I see, tell me more ({i}).")
    return memory


def kept(memory: Memory, query: str | None) -> set[int]:
    ids = set(memory.context(query=query).included)
    return {t.number for t in memory.turns if ids.intersection(t.ids)}


# -- the knapsack -------------------------------------------------------------------------


def test_knapsack_is_optimal_on_small_instances() -> None:
    rng = random.Random(5)
    for _ in range(200):
        n = rng.randint(0, 8)
        values = [rng.choice([0.0, rng.random()]) for _ in range(n)]
        costs = [rng.randint(0, 40) for _ in range(n)]
        capacity = rng.randint(0, 120)  # < UNITS: whole-token units, so the optimum is exact
        chosen = knapsack(values, costs, capacity)
        assert chosen == sorted(set(chosen)) and sum(costs[i] for i in chosen) <= capacity
        best = max(
            sum(values[i] for i in subset)
            for r in range(n + 1)
            for subset in itertools.combinations(range(n), r)
            if sum(costs[i] for i in subset) <= capacity
        )
        assert sum(values[i] for i in chosen) == pytest.approx(best)


def test_knapsack_never_overruns_a_large_budget_and_prefers_value_per_token() -> None:
    rng = random.Random(9)
    for _ in range(50):
        costs = [rng.randint(1, 400) for _ in range(60)]
        values = [rng.random() for _ in costs]
        capacity = rng.randint(200, 5000)
        assert sum(costs[i] for i in knapsack(values, costs, capacity)) <= capacity
    # one long turn worth 1.0 against three short ones worth 0.5 each
    assert knapsack([1.0, 0.5, 0.5, 0.5], [120, 40, 40, 40], 120) == [1, 2, 3]
    assert knapsack([1.0], [10], 0) == [] and knapsack([], [], 100) == []


# -- the parts ----------------------------------------------------------------------------


def test_retrieves_a_fact_far_back_within_the_budget() -> None:
    memory = chat(Memory("hybrid", max_tokens=400, reserve_output=0), {5: "My sister Agnes moved to Reykjavik."})
    fact = next(t.number for t in memory.turns if "Reykjavik" in t.text)
    assert fact in kept(memory, "Where did my sister move?")
    assert fact not in kept(Memory("sliding", max_tokens=400, reserve_output=0), None)
    ctx = memory.context(query="Where did my sister move?")
    assert ctx.tokens == memory.tokenizer.count_messages(ctx.messages) <= 400


def test_pinned_turns_stay_whatever_the_query() -> None:
    memory = chat(Memory("hybrid", max_tokens=400, reserve_output=0, sink_turns=1, pinned_share=0.25), {}, pinned=20)
    for query in (None, "volcanoes", "pasta"):
        assert {0, 20} <= kept(memory, query)
    unpinned = chat(Memory("hybrid", max_tokens=400, reserve_output=0), {}, pinned=None)
    assert 20 not in kept(unpinned, "pasta")


def test_pinned_share_bounds_what_pinned_turns_take() -> None:
    memory = chat(Memory("hybrid", max_tokens=400, reserve_output=0, sink_turns=30, pinned_share=0.2), {})
    ctx = memory.context(query=None)
    first = [t for t in memory.turns if t.number < 30]
    in_ctx = [t for t in first if set(t.ids) <= set(ctx.included)]
    cost = sum(t.tokens(memory._counter) for t in in_ctx)
    assert 0 < cost <= 0.2 * 400 and len(in_ctx) < 30


def test_recent_turns_are_kept_whatever_the_query() -> None:
    memory = chat(Memory("hybrid", max_tokens=600, reserve_output=0, recent_turns=4), {})
    newest = [t.number for t in memory.turns]
    assert set(newest[-4:]) <= kept(memory, "volcanoes")


def test_summary_of_the_older_turns_stays_within_its_share() -> None:
    options = {"summary_share": 0.2, "retrieval_tokens": 200}  # a budget where the window keeps what retrieval leaves
    memory = chat(Memory("hybrid", max_tokens=600, reserve_output=0, **options), {3: "I adopted a cat, Miso."})
    ctx = memory.context(query="traffic")
    summaries = [m for m in ctx.messages if m.role == "system" and m.content.startswith(HEADER)]
    assert len(summaries) == 1 and ctx.messages[0] is summaries[0]
    assert 0 < ctx.stats.summary_tokens <= 0.2 * 600
    assert ctx.stats.summary_tokens == memory.tokenizer.count_messages(summaries) - memory.tokenizer.count_messages([])
    policy = memory.policy
    assert isinstance(policy, Hybrid) and policy.summary.covered >= 0 and policy.state()["text"]
    none = chat(Memory("hybrid", max_tokens=600, reserve_output=0, summary_share=0.0, retrieval_tokens=200), {})
    assert not any(m.content.startswith(HEADER) for m in none.context(query="traffic").messages)


def tail_tokens(memory: Memory, query: str) -> int:
    """Tokens of the retrieved messages (those before the window) in the context for ``query``."""
    ctx = memory.context(query=query)
    start = memory.policy.state()["start"]
    return sum(
        memory._counter.message(m) for t in memory.turns if t.number < start for m in t.messages if m.id in ctx.included
    )


def test_a_budget_too_small_for_a_lasting_window_goes_to_retrieval_without_a_summary() -> None:
    facts = {i: f"Fact {i}: the lighthouse keeper painted the boat {i} shades of blue." for i in range(0, 50, 4)}
    small = chat(Memory("hybrid", max_tokens=1024, reserve_output=0), facts, turns=120)
    policy = small.policy
    assert isinstance(policy, Hybrid) and policy.semantic.retrieval_tokens == 650 and not policy.bounds_retrieval(1000)
    ctx = small.context(query="lighthouse keeper boat blue")
    assert not any(m.content.startswith(HEADER) for m in ctx.messages)  # no summary: its room goes to evidence
    assert tail_tokens(small, "lighthouse keeper boat blue") > 650  # all the room the recent turns leave
    large = chat(Memory("hybrid", max_tokens=2048, reserve_output=0), facts, turns=120)
    assert isinstance(large.policy, Hybrid) and large.policy.bounds_retrieval(2000)
    ctx = large.context(query="lighthouse keeper boat blue")
    assert ctx.messages[0].content.startswith(HEADER) and ctx.stats.summary_tokens <= 0.05 * 2048
    assert 0 < tail_tokens(large, "lighthouse keeper boat blue") <= 650
    assert ctx.stable_prefix >= 0.5 * len(ctx.messages)  # the summary and the window stay for the next turn


def test_a_weak_match_retrieves_in_proportion() -> None:
    facts = {i: f"Fact {i}: the lighthouse keeper painted the boat {i} shades of blue." for i in range(0, 50, 4)}
    for share, weak in ((0.5, True), (None, False)):
        memory = chat(Memory("hybrid", max_tokens=2048, reserve_output=0, match_share=share), facts, turns=120)
        strong = tail_tokens(memory, "lighthouse keeper painted the boat blue")
        chatty = tail_tokens(memory, "lighthouse Quetzalcoatl Tlaloc Xochipilli Mictlan")  # one word of five is known
        assert strong > 550
        assert (chatty < 0.5 * strong) if weak else (chatty > 550)


def test_unused_shares_flow_to_the_other_parts() -> None:
    small = chat(Memory("hybrid", max_tokens=2000, reserve_output=0, summary_share=0.5), {}, turns=8)
    ctx = small.context(query="volcanoes")
    assert len(ctx.included) == len(small) and ctx.stats.summary_tokens == 0  # it all fits: no summary
    # with nothing pinned, the pinned share goes to retrieval and recency: the budget is used
    big = chat(Memory("hybrid", max_tokens=800, reserve_output=0, pinned_share=0.5), {})
    ctx = big.context(query="volcanoes")
    assert ctx.tokens > 0.85 * 800


def test_state_and_options_round_trip(tmp_path: Path) -> None:
    memory = chat(Memory("hybrid", max_tokens=500, reserve_output=0, sink_turns=1, neighbours=2), {}, pinned=7)
    memory.context(query="pasta")
    memory.save(tmp_path / "h.json")
    back = Memory.load(tmp_path / "h.json")
    assert back.policy.options() == memory.policy.options()
    assert back.policy.options()["embedder"] == "hashing" and back.policy.options()["summarizer"] == "extractive"
    assert back.policy.state() == memory.policy.state() != {}
    for query in ("pasta", "volcanoes", None):
        a, b = memory.context(query=query), back.context(query=query)
        assert (a.messages, a.included, a.tokens) == (b.messages, b.included, b.tokens)


@pytest.mark.parametrize(
    "options",
    [
        {"pinned_share": -0.1},
        {"summary_share": 1.5},
        {"pinned_share": 0.9, "summary_share": 0.2},
        {"sink_turns": -1},
        {"pin_key": ""},
        {"summary_tokens": 8},
        {"low_water": 1.0},
        {"recent_share": 0.1},
        {"mmr_lambda": -1},
        {"match_share": -0.5},
        {"match_share": "half"},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Memory("hybrid", **options)
