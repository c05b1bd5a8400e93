"""The reference project's API (``finite_memory.compat``) over backends that need no torch."""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finite_memory import BackendError, CheckpointError, Memory
from finite_memory.compat import (
    APIChatBackend,
    CompleteFiniteMemoryLLM,
    ContextBuilder,
    MemoryStats,
    PrometheusHook,
    ReferenceCheckpointError,
    TelemetryHook,
    install_alias,
)
from finite_memory.testing import EchoBackend


class CharTokenizer:
    """One token per character, like a byte-level tokenizer would for ASCII."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


class RecordingSend:
    """A hosted model stand-in: remembers each prompt and answers with a fixed reply."""

    def __init__(self, reply: str = "noted.") -> None:
        self.prompts: list[str] = []
        self.reply = reply

    def __call__(self, prompt: str, max_new_tokens: int) -> str:
        self.prompts.append(prompt)
        return self.reply


class RecordingHook(TelemetryHook):
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def on_chat_start(self, message: str) -> None:
        self.calls.append(("start", (message,)))

    def on_policy_execute(self, policy: str, latency_ms: float, tokens_before: int, tokens_after: int) -> None:
        self.calls.append(("policy", (policy, tokens_before, tokens_after)))

    def on_chat_complete(self, stats: dict[str, Any], latency_ms: float) -> None:
        self.calls.append(("complete", (stats["tokens_seen"],)))


def api_llm(max_tokens: int = 200, policy: str = "sliding", **options: Any) -> tuple[CompleteFiniteMemoryLLM, Any]:
    send = RecordingSend()
    backend = APIChatBackend(CharTokenizer(), send, name="hosted")
    return CompleteFiniteMemoryLLM(backend, max_tokens=max_tokens, memory_policy=policy, **options), send


def test_a_turn_returns_the_reference_dict_with_running_stats() -> None:
    llm, send = api_llm()
    result = llm.chat("My name is Alice.", max_new_tokens=8)
    assert set(result) == {"response", "tokens_used", "context_length", "stats", "memory_policy"}
    assert result["response"] == "noted."
    assert result["tokens_used"] == len("noted.")
    assert result["stats"] is llm.stats and isinstance(llm.stats, MemoryStats)
    assert send.prompts == ["user: My name is Alice.\nassistant:"]
    assert result["context_length"] == len(send.prompts[0])  # the character tokenizer counts exactly
    assert llm.stats.tokens_seen == len("user: My name is Alice.\n") + len("assistant: noted.\n")
    assert llm.stats.total_policy_calls == 3  # one context built, two messages archived
    assert [m["role"] for m in llm.conversation_history] == ["user", "assistant"]
    assert llm.conversation_history[0]["tokens"] == len("user: My name is Alice.\n")


def test_the_prompt_never_passes_max_tokens_and_evictions_are_counted() -> None:
    llm, send = api_llm(max_tokens=120)
    for i in range(30):
        llm.chat(f"turn {i}: the weather in city {i} is fine")
    assert max(len(p) for p in send.prompts) <= 120
    assert send.prompts[-1].startswith("user: turn")  # whole turns leave the window
    assert llm.stats.evictions > 0
    assert llm.stats.tokens_retained == len(send.prompts[-1])
    assert llm.stats.compression_ratio == pytest.approx(llm.stats.tokens_seen / llm.stats.tokens_retained)
    assert llm.stats.compression_ratio > 3


def test_evictions_count_the_tokens_that_left_the_context() -> None:
    llm, _ = api_llm(max_tokens=64)
    llm.chat("aaaaaaaaaaaaaaaaaaaaaaa")  # user line 30 tokens, reply line 18
    assert llm.stats.evictions == 0
    llm.chat("bbbbbbbbbbbbbbbbbbbbbbb")  # the first turn (48 tokens) no longer fits beside the new question
    assert llm.stats.evictions == len("user: aaaaaaaaaaaaaaaaaaaaaaa\n") + len("assistant: noted.\n")


def test_an_empty_message_changes_nothing() -> None:
    llm, send = api_llm()
    assert llm.chat("   ")["response"] == ""
    assert llm.chat("")["tokens_used"] == 0
    assert send.prompts == [] and llm.conversation_history == [] and llm.stats == MemoryStats()


def test_a_failing_backend_raises_and_leaves_everything_as_it_was() -> None:
    def broken(prompt: str, max_new_tokens: int) -> str:
        raise ConnectionError("the service is down")

    llm = CompleteFiniteMemoryLLM(APIChatBackend(CharTokenizer(), broken), max_tokens=100)
    with pytest.raises(BackendError, match="the service is down"):
        llm.chat("hello")
    assert llm.conversation_history == [] and llm.stats == MemoryStats()
    with pytest.raises(BackendError, match="not the reply text"):
        CompleteFiniteMemoryLLM(APIChatBackend(CharTokenizer(), lambda p, n: 42), max_tokens=100).chat("hi")  # type: ignore[arg-type,return-value]


def test_unknown_keywords_policies_and_bad_knobs_are_refused() -> None:
    backend = EchoBackend()
    with pytest.raises(TypeError):
        CompleteFiniteMemoryLLM(backend, max_tokens=256, windowsize=64)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="unknown policy 'invalid_policy'"):
        CompleteFiniteMemoryLLM(backend, memory_policy="invalid_policy")
    with pytest.raises(ValueError, match="window_size"):
        CompleteFiniteMemoryLLM(backend, window_size=0)
    with pytest.raises(ValueError, match="at least 32"):
        CompleteFiniteMemoryLLM(backend, max_tokens=16)
    with pytest.raises(TypeError, match="encode"):
        CompleteFiniteMemoryLLM(object())
    with pytest.raises(TypeError, match="send_callable"):
        APIChatBackend(CharTokenizer(), "not callable")  # type: ignore[arg-type]


def test_reference_knobs_map_to_the_nearest_policy_options() -> None:
    backend = EchoBackend()
    assert CompleteFiniteMemoryLLM(backend, memory_policy="hybrid").policy_options() == {}
    hybrid = CompleteFiniteMemoryLLM(
        backend, max_tokens=512, memory_policy="hybrid", window_size=128, semantic_clusters=6, summary_interval=256
    )
    assert hybrid.policy_options() == {"retrieval_tokens": 384, "candidates": 6, "low_water": 0.5}
    assert hybrid.memory.policy.semantic.candidates == 6  # type: ignore[attr-defined]
    semantic = CompleteFiniteMemoryLLM(backend, memory_policy="semantic", semantic_clusters=2, window_size=64)
    assert semantic.policy_options() == {"retrieval_tokens": 448, "candidates": 2}
    assert (semantic.window_size, semantic.summary_interval) == (64, 256)  # the reference's default when left out
    summary = CompleteFiniteMemoryLLM(backend, max_tokens=200, memory_policy="rolling_summary", summary_interval=900)
    assert summary.policy_options() == {"low_water": 0.1}
    named = CompleteFiniteMemoryLLM(backend, memory_policy="semantic", embedding_model="hashing")
    assert named.policy_options() == {"embedder": "hashing"}
    mine = CompleteFiniteMemoryLLM(backend, memory_policy="sliding", policy_options={"sink_turns": 1})
    assert mine.memory.policy.sink_turns == 1  # type: ignore[attr-defined]


def test_max_policy_ms_overruns_are_counted_as_fallbacks() -> None:
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=256, memory_policy="semantic", max_policy_ms=1e-6)
    for i in range(3):
        llm.chat(f"question {i} about the garden")
    assert llm.stats.fallback_count == 3 and llm.stats.policy_latency_ms > 0
    llm.max_policy_ms = None
    llm.chat("one more")
    assert llm.stats.fallback_count == 3


@pytest.mark.parametrize("bad", [True, math.inf, 0, -1.0, "5"])
def test_setting_max_policy_ms_takes_the_memorys_own_check(bad: object) -> None:
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=256, max_policy_ms=50)
    with pytest.raises(ValueError, match="max_policy_ms must be a positive number"):
        llm.max_policy_ms = bad  # type: ignore[assignment]
    assert llm.max_policy_ms == 50


def test_running_summaries_are_counted() -> None:
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=160, memory_policy="rolling_summary")
    for i in range(25):
        llm.chat(f"On day {i} Alice visited city number {i} and bought {i} apples.")
    assert llm.stats.summaries_created >= 2
    assert any("Summary of the earlier conversation" in line for line in llm.get_context_window().splitlines())


def test_telemetry_hooks_are_called_each_turn_in_order() -> None:
    hook = RecordingHook()
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=256, telemetry_hook=hook)
    llm.chat("hello there")
    names = [name for name, _ in hook.calls]
    assert names == ["start", "policy", "complete"]
    policy_args = hook.calls[1][1]
    assert policy_args[0] == "sliding" and policy_args[2] == llm.stats.tokens_retained
    assert hook.calls[2][1] == (llm.stats.tokens_seen,)
    failing = CompleteFiniteMemoryLLM(EchoBackend(fail_after=0), max_tokens=256, telemetry_hook=hook)
    hook.calls.clear()
    with pytest.raises(BackendError):
        failing.chat("hello")
    assert [name for name, _ in hook.calls] == ["start"]


def test_a_spec_string_and_a_finite_memory_backend_both_work() -> None:
    llm = CompleteFiniteMemoryLLM("echo:x", max_tokens=128, system="Be brief.")
    assert llm.chat("ping")["response"] == "echo: ping"
    assert llm.chat_backend.name == "echo:x"
    assert llm.get_context_window().splitlines()[0] == "system: Be brief."
    assert list(llm.token_buffer) == []  # the echo backend gives no token ids


def test_reset_forgets_the_conversation_and_the_totals() -> None:
    llm, _ = api_llm()
    llm.chat("remember 42")
    assert llm.token_buffer and llm.stats.tokens_seen
    llm.reset()
    assert llm.conversation_history == [] and llm.stats == MemoryStats() and not llm.token_buffer
    assert llm.get_context_window() == ""
    llm.chat("again")
    llm.stats = MemoryStats()  # the reference's way to restart the counts
    llm.chat("and again")
    assert llm.stats.total_policy_calls == 3
    with pytest.raises(TypeError, match="MemoryStats"):
        llm.stats = {}  # type: ignore[assignment]


def test_checkpoints_keep_the_reference_layout_and_restore_everything(tmp_path: Path) -> None:
    llm, _ = api_llm(max_tokens=300, policy="hybrid", window_size=60)
    for fact in ("I live in Lisbon.", "My cat is called Tom.", "I work at the harbour."):
        llm.chat(fact)
    path = llm.save_checkpoint(tmp_path / "deep" / "chat.json")
    document = json.loads(path.read_text())
    assert set(document) == {"config", "state", "stats", "metadata"}
    assert document["config"] == {
        "max_tokens": 300,
        "memory_policy": "hybrid",
        "window_size": 60,
        "semantic_clusters": 4,
        "summary_interval": 256,
    }
    assert document["state"]["conversation_history"] == llm.conversation_history
    assert document["stats"] == asdict(llm.stats)

    other, _ = api_llm(max_tokens=100, policy="sliding")
    config = other.load_checkpoint(path)
    assert config["max_tokens"] == 300 and config["memory_policy"] == "hybrid"
    assert (other.max_tokens, other.memory_policy, other.window_size) == (300, "hybrid", 60)
    assert other.conversation_history == llm.conversation_history
    assert other.stats == llm.stats and list(other.token_buffer) == list(llm.token_buffer)
    assert other.memory.policy.options() == llm.memory.policy.options()
    other.chat("Where do I live?")
    assert other.stats.tokens_seen > llm.stats.tokens_seen


def test_a_checkpoint_written_by_the_reference_is_imported(tmp_path: Path) -> None:
    # The reference's layout: config, state (token ids of its own model and the history), stats, metadata.
    written_by_reference = {
        "config": {
            "max_tokens": 256,
            "memory_policy": "rolling_summary",
            "window_size": 96,
            "semantic_clusters": 4,
            "summary_interval": 128,
        },
        "state": {
            "token_buffer": [464, 2068, 7586],
            "attention_scores": [],
            "summary_tokens": [],
            "tokens_since_summary": 12,
            "conversation_history": [
                {"role": "user", "content": "The fox is brown.", "tokens": 5},
                {"role": "assistant", "content": "Noted, a brown fox.", "tokens": 6},
            ],
        },
        "stats": {**asdict(MemoryStats(tokens_seen=11, tokens_retained=11, total_policy_calls=2)), "cache_hits": 0},
        "metadata": {"model": "gpt2", "turns": 1},
    }
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(written_by_reference))
    llm, send = api_llm(max_tokens=100)
    config = llm.load_checkpoint(path)
    assert config == written_by_reference["config"]
    assert (llm.max_tokens, llm.memory_policy, llm.summary_interval) == (256, "rolling_summary", 128)
    assert llm.policy_options() == {"low_water": 0.5}
    assert [(m["role"], m["content"]) for m in llm.conversation_history] == [
        ("user", "The fox is brown."),
        ("assistant", "Noted, a brown fox."),
    ]
    assert llm.stats.tokens_seen == 11 and list(llm.token_buffer) == [464, 2068, 7586]
    llm.chat("What colour is the fox?")
    assert "user: The fox is brown." in send.prompts[-1]


def test_a_plain_memory_checkpoint_loads_too(tmp_path: Path) -> None:
    memory = Memory("semantic", max_tokens=400)
    memory.add("user", "I moved to Lisbon in May.")
    memory.add("assistant", "Lovely!")
    memory.save(tmp_path / "memory.json")
    llm, _ = api_llm()
    assert llm.load_checkpoint(tmp_path / "memory.json") == {"max_tokens": 400, "memory_policy": "semantic"}
    assert len(llm.conversation_history) == 2


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"invalid": "data"}', "missing field 'config'"),
        ("[1, 2]", "not a checkpoint"),
        ("{not json", "not JSON"),
        ('{"config": {"max_tokens": "x"}, "state": {}, "stats": {}}', "config needs max_tokens"),
        ('{"config": {"max_tokens": 64, "memory_policy": "sliding"}, "state": {}, "stats": {}}', "history"),
        (
            '{"config": {"max_tokens": 64, "memory_policy": "sliding"}, "state": {"conversation_history": []},'
            ' "stats": {"evictions": -1}}',
            "stats.evictions",
        ),
        (
            '{"config": {"max_tokens": 64, "memory_policy": "nope"}, "state": {"conversation_history": []},'
            ' "stats": {}}',
            "unknown policy",
        ),
        (
            '{"config": {"max_tokens": 64, "memory_policy": "sliding"}, "state": {"conversation_history":'
            ' [{"role": "wizard", "content": "x"}]}, "stats": {}}',
            "conversation_history\\[0\\]",
        ),
    ],
)
def test_a_bad_checkpoint_raises_a_key_error_and_changes_nothing(tmp_path: Path, content: str, problem: str) -> None:
    llm, _ = api_llm()
    llm.chat("keep me")
    before = (llm.conversation_history, llm.stats.tokens_seen, llm.memory_policy, llm.max_tokens)
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ReferenceCheckpointError, match=problem) as caught:
        llm.load_checkpoint(path)
    assert isinstance(caught.value, KeyError) and isinstance(caught.value, CheckpointError)
    assert (llm.conversation_history, llm.stats.tokens_seen, llm.memory_policy, llm.max_tokens) == before


def test_an_edited_embedded_memory_fails_its_checksum(tmp_path: Path) -> None:
    llm, _ = api_llm()
    llm.chat("the secret is 1234")
    path = llm.save_checkpoint(tmp_path / "chat.json")
    document = json.loads(path.read_text())
    document["state"]["finite_memory"]["memory"]["messages"][0]["content"] = "the secret is 9999"
    path.write_text(json.dumps(document))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        api_llm()[0].load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        llm.load_checkpoint(tmp_path / "missing.json")


def test_context_builder_keeps_the_tail_and_sentence_anchors() -> None:
    class Letters:
        def decode(self, ids: list[int]) -> str:
            return "".join(chr(i) for i in ids)

    backend = Letters()
    builder = ContextBuilder(max_tokens=12, window_size=6)
    short = [ord(c) for c in "Hi."]
    assert builder.build(backend, [], short) == (short, 0)
    text = [ord(c) for c in "Alpha. Beta! Gamma? Delta epsilon zeta eta"]
    kept, hits = builder.build(backend, [], text)
    assert hits == 0 and len(kept) <= 12
    assert kept[-6:] == text[-6:]  # the recent window
    assert ord("A") in kept  # the first token is an anchor
    assert builder.build(backend, [], text) == (kept, 1)  # anchors come from the cache
    for i in range(120):  # the cache holds the last 100 sequences
        builder.build(backend, [], [ord("x")] * 20 + [i])
    assert builder.build(backend, [], text) == (kept, 0)
    assert ContextBuilder(max_tokens=0).build(backend, [], text) == ([], 0)
    with pytest.raises(ValueError, match="window_size"):
        ContextBuilder(max_tokens=10, window_size=-1)


def test_memory_stats_round_trip_and_validation() -> None:
    stats = MemoryStats(tokens_seen=10, compression_ratio=2.5)
    assert MemoryStats.from_dict(asdict(stats)) == stats
    with pytest.raises(ValueError, match="unknown stats fields: bogus"):
        MemoryStats.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="an object"):
        MemoryStats.from_dict([])
    with pytest.raises(ValueError, match="tokens_seen"):
        MemoryStats.from_dict({"tokens_seen": 1.5})
    with pytest.raises(ValueError, match="compression_ratio"):
        MemoryStats.from_dict({"compression_ratio": math.nan})


def test_api_backend_generate_works_on_plain_lists() -> None:
    backend = APIChatBackend(CharTokenizer(), RecordingSend("ok"), name="hosted")
    assert backend.get_model_name() == "hosted" and "hosted" in repr(backend)
    assert backend.generate([[72, 105]], max_new_tokens=4) == {"sequences": [[72, 105, 111, 107]]}
    assert backend.generate([72, 105], max_new_tokens=4) == {"sequences": [[72, 105, 111, 107]]}
    with pytest.raises(TypeError, match="integers"):
        backend.generate([["a"]], max_new_tokens=4)
    with pytest.raises(TypeError, match="tensor or a list"):
        backend.generate("Hi", max_new_tokens=4)


def test_install_alias_lets_reference_imports_work() -> None:
    saved = {name: sys.modules.get(name) for name in ("finite_memory_llm", "finite_memory_llm.core")}
    try:
        module = install_alias()
        import finite_memory_llm  # type: ignore[import-not-found]
        from finite_memory_llm.core import CompleteFiniteMemoryLLM as FromCore  # type: ignore[import-not-found]

        assert finite_memory_llm is module and FromCore is CompleteFiniteMemoryLLM
    finally:
        for name, value in saved.items():
            if value is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = value


def test_prometheus_hook_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match="pip install prometheus-client"):
        PrometheusHook()


def test_prometheus_hook_counts_turns_and_evictions() -> None:
    prometheus = pytest.importorskip("prometheus_client")
    registry = prometheus.CollectorRegistry()
    hook = PrometheusHook(registry=registry)
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=64, telemetry_hook=hook)
    for i in range(6):
        llm.chat(f"message number {i} with a few words in it")
    assert registry.get_sample_value("finite_memory_chat_total") == 6
    assert registry.get_sample_value("finite_memory_tokens_evicted_total") == llm.stats.evictions > 0
    assert registry.get_sample_value("finite_memory_buffer_size") == llm.stats.tokens_retained
    assert registry.get_sample_value("finite_memory_policy_latency_seconds_count", {"policy": "sliding"}) == 6
    evicted = llm.stats.evictions
    llm.reset()  # the totals restart: the counter must not go back, nor count the old total again
    llm.chat("fresh start")
    assert registry.get_sample_value("finite_memory_tokens_evicted_total") == evicted


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 600) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_roles = st.sampled_from(["user", "assistant", "system", "tool", "wizard", 3])
_entry = st.fixed_dictionaries({"role": _roles, "content": st.text(max_size=20) | st.integers()})
_reference_document = st.fixed_dictionaries(
    {
        "config": st.fixed_dictionaries(
            {"max_tokens": st.integers(-10, 600) | _json, "memory_policy": st.sampled_from(["sliding", "bad"])},
            optional={"window_size": st.integers(0, 300) | _json, "summary_interval": _json},
        ),
        "state": st.fixed_dictionaries(
            {"conversation_history": st.lists(_entry, max_size=4) | _json},
            optional={"token_buffer": st.lists(st.integers(0, 99), max_size=4) | _json, "finite_memory": _json},
        ),
        "stats": st.dictionaries(st.sampled_from(["tokens_seen", "evictions", "compression_ratio", "x"]), _json),
    },
    optional={"metadata": _json},
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=_json | _reference_document)
def test_any_checkpoint_file_loads_or_raises_a_checkpoint_error(tmp_path: Path, document: Any) -> None:
    llm, _ = api_llm()
    llm.chat("keep me")
    before = (llm.conversation_history, asdict(llm.stats), llm.memory_policy, llm.max_tokens)
    path = tmp_path / "fuzzed.json"
    path.write_text(json.dumps(document))
    try:
        config = llm.load_checkpoint(path)
    except ReferenceCheckpointError:
        assert (llm.conversation_history, asdict(llm.stats), llm.memory_policy, llm.max_tokens) == before
    else:
        assert config["max_tokens"] == llm.max_tokens and llm.memory.max_tokens == llm.max_tokens
        assert all(math.isfinite(value) for value in asdict(llm.stats).values())
