from __future__ import annotations

import time
from dataclasses import dataclass

import pytest
from _core_helpers import tool_call

from finite_memory import ApproxTokenizer, Memory, Message, UnknownPluginError
from finite_memory.policies import Policy, PolicyInput, Selection, Sliding


def chat_turns(memory: Memory, count: int, words: int = 12) -> None:
    for i in range(count):
        memory.add("user", f"question {i} " + "lorem " * words)
        memory.add("assistant", f"answer {i} " + "ipsum " * words)


def test_add_gives_ids_and_turns(memory: Memory) -> None:
    first = memory.add("assistant", "Hello! How can I help?")
    user = memory.add("user", "I moved to Lisbon in May.")
    reply = memory.add("assistant", "Nice!")
    second = memory.add("user", "Where do I live?")
    assert [m.id for m in (first, user, reply, second)] == [0, 1, 2, 3]
    assert [m.turn for m in (first, user, reply, second)] == [0, 1, 1, 2]
    assert [len(t.messages) for t in memory.turns] == [1, 2, 1]
    assert len(memory) == 4
    assert memory.messages[1].content == "I moved to Lisbon in May."


def test_context_is_system_first_and_within_budget(memory: Memory) -> None:
    chat_turns(memory, 30)
    ctx = memory.context(query="anything")
    assert ctx.messages[0].role == "system"
    assert ctx.messages[0].content == "You are a helpful assistant."
    assert ctx.tokens == memory.tokenizer.count_messages(ctx.messages)
    assert ctx.tokens <= memory.max_tokens - memory.reserve_output == ctx.budget
    assert ctx.stats.policy == "sliding"
    assert ctx.stats.candidates == 29
    assert ctx.stats.dropped == 29 - (len({m.turn for m in ctx.messages if m.turn is not None}) - 1)
    # the newest turns, whole, in order
    turns = [m.turn for m in ctx.messages[1:]]
    assert turns == sorted(turns)
    assert turns[-1] == 29
    assert ctx.included == [m.id for m in ctx.messages[1:]]


def test_sliding_keeps_sink_turns() -> None:
    memory = Memory("sliding", max_tokens=300, reserve_output=0, sink_turns=1)
    chat_turns(memory, 40)
    ctx = memory.context()
    kept = sorted({m.turn for m in ctx.messages})
    assert kept[0] == 0 and kept[-1] == 39
    assert kept[1] > 1  # a gap: the sink, then the newest turns


def test_system_messages_added_later_are_pinned(memory: Memory) -> None:
    chat_turns(memory, 20)
    memory.add("system", "The user prefers short answers.")
    chat_turns(memory, 20)
    ctx = memory.context()
    assert [m.content for m in ctx.messages[:2]] == ["You are a helpful assistant.", "The user prefers short answers."]


def test_tool_results_must_answer_a_call_of_the_current_turn(memory: Memory) -> None:
    memory.add("user", "weather?")
    memory.add("assistant", "", tool_calls=[tool_call("call_1")])
    memory.add("tool", "18 C", tool_call_id="call_1")
    with pytest.raises(ValueError, match="answers no tool call of the current turn"):
        memory.add("tool", "?", tool_call_id="call_9")
    memory.add("user", "and tomorrow?")
    with pytest.raises(ValueError, match="open calls: none"):
        memory.add("tool", "20 C", tool_call_id="call_1")
    assert len(memory) == 4  # the rejected messages were not archived


def test_extend_is_all_or_nothing(memory: Memory) -> None:
    memory.add("user", "hi")
    with pytest.raises(ValueError):
        memory.extend([Message("assistant", "ok"), Message("tool", "x", tool_call_id="nope")])
    assert len(memory) == 1
    with pytest.raises(TypeError, match="Message objects"):
        memory.extend([{"role": "user", "content": "x"}])  # type: ignore[list-item]


def test_a_message_larger_than_the_budget_is_truncated_with_a_marker(memory: Memory) -> None:
    memory.add("user", "start " + "word " * 5000 + " end")
    ctx = memory.context()
    assert ctx.tokens <= memory.budget
    sent = ctx.messages[-1].content
    assert "tokens cut by finite-memory" in sent
    assert sent.startswith("start") and sent.endswith("end")
    assert ctx.stats.truncated >= 1
    assert memory.messages[0].content.count("word") == 5000  # the archive keeps it whole


def test_huge_system_prompt_and_huge_turn_share_the_budget() -> None:
    memory = Memory(max_tokens=200, reserve_output=0, system="rule " * 2000)
    memory.add("user", "question " * 2000)
    memory.add("assistant", "", tool_calls=[tool_call("c1")])
    memory.add("tool", "result " * 2000, tool_call_id="c1")
    ctx = memory.context()
    assert ctx.tokens <= 200
    roles = [m.role for m in ctx.messages]
    assert roles[0] == "system" and "user" in roles
    if "tool" in roles:
        assert roles.index("assistant") < roles.index("tool")


def test_many_tool_messages_in_a_tiny_budget_keep_the_question() -> None:
    memory = Memory(max_tokens=40, reserve_output=0)
    memory.add("user", "what now?")
    calls = [tool_call(f"c{i}") for i in range(30)]
    memory.add("assistant", "", tool_calls=calls)
    for i in range(30):
        memory.add("tool", f"result {i}", tool_call_id=f"c{i}")
    ctx = memory.context()
    assert ctx.tokens <= 40
    assert [m.role for m in ctx.messages] == ["user"]


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"max_tokens": 100, "reserve_output": 100}, ValueError, "must be smaller than max_tokens"),
        ({"max_tokens": 100, "reserve_output": 200}, ValueError, "must be smaller than max_tokens"),
        ({"max_tokens": -5}, ValueError, "max_tokens must be > 0"),
        ({"max_tokens": 100, "reserve_output": -1}, ValueError, "reserve_output >= 0"),
        ({"max_tokens": 40, "reserve_output": 20}, ValueError, "at least 32 tokens"),
        ({"max_tokens": 10.5}, TypeError, "max_tokens must be an int"),
        ({"max_tokens": 100, "reserve_output": "10"}, TypeError, "reserve_output must be an int"),
        ({"system": 3}, TypeError, "system must be a str"),
        ({"max_policy_ms": 0}, ValueError, "max_policy_ms must be a positive number"),
        ({"session": ""}, ValueError, "session must be a non-empty string"),
        ({"policy": 3}, TypeError, "policy must be a name or a Policy"),
        ({"policy": Sliding(), "sink_turns": 1}, TypeError, "already built"),
        ({"policy": "sliding", "window": 3}, TypeError, "bad options for policy 'sliding'"),
        ({"policy": "sliding", "sink_turns": -1}, ValueError, "sink_turns must be an int >= 0"),
        ({"store": 5}, TypeError, "store must be a URL string or a Store"),
        ({"store": "nowhere"}, ValueError, "a store is a URL"),
        ({"tokenizer": object()}, TypeError, "count\\(text\\) and count_messages"),
    ],
)
def test_bad_arguments_say_what_is_allowed(kwargs: dict[str, object], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        Memory(**kwargs)  # type: ignore[arg-type]


def test_unknown_policy_lists_the_installed_ones() -> None:
    with pytest.raises(UnknownPluginError, match=r"unknown policy 'nope'; installed policies: .*sliding"):
        Memory("nope")


def test_add_rejects_bad_input(memory: Memory) -> None:
    with pytest.raises(ValueError, match="allowed roles"):
        memory.add("bot", "x")
    with pytest.raises(TypeError, match="content must be str"):
        memory.add("user", b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="id is given by the memory"):
        memory.add("user", "x", id=4)
    with pytest.raises(TypeError, match="unknown message fields: colour"):
        memory.add("user", "x", colour="red")
    with pytest.raises(TypeError, match="query must be a str"):
        memory.context(query=5)  # type: ignore[arg-type]
    assert len(memory) == 0


def test_reserve_output_defaults_to_a_share_of_the_budget() -> None:
    assert Memory(max_tokens=2048).reserve_output == 512
    assert Memory(max_tokens=100_000).reserve_output == 1024
    assert Memory(max_tokens=512, reserve_output=0).budget == 512


@dataclass
class SlowPolicy(Policy):
    """Keeps everything, slowly; checks its deadline when asked to."""

    name = "slow"
    seconds: float = 0.05
    polite: bool = False

    def select(self, view: PolicyInput) -> Selection:
        deadline = time.perf_counter() + self.seconds
        while time.perf_counter() < deadline:
            if self.polite:
                view.check_deadline()
        return Selection(turns=list(view.turns))


@pytest.mark.parametrize("polite", [False, True])
def test_a_policy_past_max_policy_ms_falls_back_to_sliding(polite: bool) -> None:
    memory = Memory(SlowPolicy(polite=polite), max_tokens=200, reserve_output=0, max_policy_ms=5)
    chat_turns(memory, 30)
    ctx = memory.context()
    assert ctx.stats.fallback is True
    assert ctx.stats.policy == "slow"
    assert ctx.tokens <= 200
    fast = Memory(SlowPolicy(seconds=0), max_tokens=200, reserve_output=0, max_policy_ms=1000)
    chat_turns(fast, 3)
    assert fast.context().stats.fallback is False


@dataclass
class GreedyPolicy(Policy):
    """Returns every turn, ignoring the budget, to test the memory's final check."""

    name = "greedy"

    def select(self, view: PolicyInput) -> Selection:
        return Selection(turns=list(view.turns), prefix=[Message("system", "summary " * 50)], summary_tokens=60)


def test_the_memory_enforces_the_budget_even_when_a_policy_overspends() -> None:
    memory = Memory(GreedyPolicy(), max_tokens=150, reserve_output=0)
    chat_turns(memory, 20)
    ctx = memory.context()
    assert ctx.tokens <= 150
    assert ctx.messages[-1].turn == 19
    assert ctx.stats.summary_tokens == 0  # the summary had to go


def test_switching_tokenizer_recounts_lazily() -> None:
    memory = Memory(max_tokens=400, reserve_output=0)
    chat_turns(memory, 30)
    before = memory.context().tokens
    doubled = ApproxTokenizer(scale=2.0)
    memory.use_tokenizer(doubled)
    ctx = memory.context()
    assert memory.tokenizer is doubled
    assert ctx.tokens == doubled.count_messages(ctx.messages) <= 400
    assert len(ctx.messages) < 30 and before <= 400


def test_calibration_refreshes_cached_counts() -> None:
    tok = ApproxTokenizer()
    memory = Memory(max_tokens=400, reserve_output=0, tokenizer=tok)
    chat_turns(memory, 30)
    ctx = memory.context()
    tok.calibrate(ctx.messages, ctx.tokens * 3)  # the real tokenizer counts 3x more
    again = memory.context()
    assert again.tokens == tok.count_messages(again.messages) <= 400
    assert len(again.messages) < len(ctx.messages)


class _CountingCalls(ApproxTokenizer):
    """An estimate that records whole-prompt counts; ``additive`` as the class says unless told otherwise."""

    def __init__(self, additive: bool) -> None:
        super().__init__()
        self.additive = additive
        self.prompts = 0

    def count_messages(self, messages):  # type: ignore[no-untyped-def]
        self.prompts += 1
        return super().count_messages(messages)


@pytest.mark.parametrize("additive", [True, False])
def test_an_additive_tokenizer_is_not_asked_to_count_each_prompt_again(additive: bool) -> None:
    tok = _CountingCalls(additive)
    memory = Memory(max_tokens=400, reserve_output=0, tokenizer=tok)
    chat_turns(memory, 30)
    memory.context()
    tok.prompts = 0
    ctx = memory.context()
    assert (tok.prompts == 0) is additive  # cached per-turn counts summed, or the whole prompt counted
    assert ctx.tokens == ApproxTokenizer.count_messages(tok, ctx.messages) <= 400


def test_empty_memory_gives_only_the_system_prompt() -> None:
    assert Memory(system="sys").context().messages == [Message("system", "sys")]
    assert Memory().context().messages == []


def test_repr_and_context_manager() -> None:
    with Memory(max_tokens=100, reserve_output=0) as memory:
        memory.add("user", "hi")
        assert "messages=1" in repr(memory)
        assert memory.store.messages("default")[0].content == "hi"
        assert memory.context().as_dicts() == [{"role": "user", "content": "hi", "id": 0, "turn": 0}]


def test_system_prompt_cut_to_a_marker_when_its_share_is_smaller_than_one() -> None:
    # found by hypothesis: a 32-token budget, a huge system prompt and a tool turn used to drop the system
    mem = Memory(max_tokens=64, reserve_output=32, system="0" * 300)
    mem.add("user", "")
    mem.add("assistant", "", tool_calls=[tool_call("c1")])
    mem.add("tool", "", tool_call_id="c1")
    ctx = mem.context()
    assert ctx.tokens <= mem.budget
    assert ctx.messages[0].role == "system"
    assert "cut by finite-memory" in ctx.messages[0].content
    assert [m.role for m in ctx.messages[1:]] == ["user"]
