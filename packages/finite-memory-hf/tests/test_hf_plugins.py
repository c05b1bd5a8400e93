"""The neural plug-ins: MiniLM embedder and attention scorer on real MiniLM weights, the model summarizer."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

from finite_memory import Chat, Memory
from finite_memory._registry import load_plugin
from finite_memory.embedders import Embedder
from finite_memory.scorers import Scorer
from finite_memory.summarizers import Summarizer
from finite_memory_hf import AttentionScorer, HFBackend, MiniLMEmbedder, ModelSummarizer
from finite_memory_hf.summarizers import facts

FACTS = [
    "Ana lands in Lisbon at 7:30 on May 3.",
    "My sister Ana moved to Oslo in 2021 for a job at Equinor.",
    "The meeting with Bob is at 14:00 in room 42.",
    "The wifi password is tulip-8841 and the router is in the hall.",
]
FILLER = [
    "ok thanks!",
    "haha, sure, ok.",
    "I see, that sounds nice, thank you so much for that.",
    "Okay, great, that is really good to hear, thanks again!",
]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    built = load_plugin("embedders", "minilm")()  # constructible with no arguments, as policies do
    assert isinstance(built, MiniLMEmbedder)
    return built


@pytest.fixture(scope="module")
def scorer() -> AttentionScorer:
    built = load_plugin("scorers", "attention")()
    assert isinstance(built, AttentionScorer)
    return built


def dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_minilm_puts_similar_sentences_closer_than_unrelated_ones(embedder: MiniLMEmbedder) -> None:
    assert isinstance(embedder, Embedder) and embedder.dim == 384 and embedder.name == "minilm"
    moved, relocated, cat, tax = embedder.embed(
        [
            "I moved to Lisbon in May.",
            "In May I relocated to Lisbon, Portugal.",
            "My cat likes fish.",
            "The quarterly tax report is due on Friday.",
        ]
    )
    assert all(len(v) == 384 and math.isclose(dot(v, v), 1.0, abs_tol=1e-5) for v in (moved, relocated, cat, tax))
    assert dot(moved, relocated) > 0.7 > 0.3 > max(dot(moved, cat), dot(moved, tax))


def test_minilm_caches_by_text_and_batches() -> None:
    embedder = MiniLMEmbedder(batch_size=16)
    texts = [f"note {i}: the parcel for flat {i} arrived" for i in range(40)]
    passes = embedder.forward_passes
    first = embedder.embed(texts)
    assert embedder.forward_passes - passes == 3  # 40 new texts in batches of 16
    again = embedder.embed([*reversed(texts), texts[0]])
    assert embedder.forward_passes - passes == 3  # nothing embedded twice
    assert again[0] == first[-1] and again[-1] == first[0]
    single = embedder._encode([texts[5]])[0]
    assert max(abs(a - b) for a, b in zip(single, first[5], strict=True)) < 1e-5  # batching changes nothing
    with pytest.raises(TypeError, match="sequence of texts"):
        embedder.embed("one text")  # type: ignore[arg-type]


def test_attention_scorer_ranks_facts_above_filler(scorer: AttentionScorer) -> None:
    assert isinstance(scorer, Scorer)
    scores = scorer.score([*FACTS, *FILLER, ""])
    fact_scores, filler_scores = scores[: len(FACTS)], scores[len(FACTS) : -1]
    assert min(fact_scores) > max(filler_scores), scores
    assert scores[-1] == 0.0
    passes = scorer.forward_passes
    assert scorer.score(FACTS[:2]) == fact_scores[:2] and scorer.forward_passes == passes  # cached


def test_attention_scorer_runs_on_a_causal_model(tiny_model: Path) -> None:
    scorer = AttentionScorer(tiny_model)
    assert scorer.name is None  # not the registered default: cannot be rebuilt by name
    scores = scorer.score(["hello there", "Ana moved to Lisbon in May 2023 with Bob."])
    assert all(s >= 0 for s in scores) and scores[1] > 0


def test_model_summarizer_falls_back_when_the_model_drops_names_and_numbers(tiny_model: Path) -> None:
    backend = HFBackend(str(tiny_model))
    summarizer = load_plugin("summarizers", "model")(backend)
    assert isinstance(summarizer, Summarizer)
    count = backend.tokenizer.count
    evicted = [*FACTS, *FILLER]
    summary = summarizer.summarize("Earlier: Carol paid 250 euros.", evicted, 60, count)
    assert summarizer.fallbacks == 1, "a random tiny model's text keeps no names: rejected"
    assert count(summary) <= 60
    assert {"Ana", "Lisbon", "7:30"} <= facts(summary) and "thanks" not in summary
    assert summary == summarizer.extractive.summarize("Earlier: Carol paid 250 euros.", evicted, 60, count)
    assert summarizer.summarize("", [], 60, count) == ""


def test_model_summarizer_accepts_a_faithful_summary_and_rejects_a_lossy_one(tiny_model: Path) -> None:
    summarizer = ModelSummarizer(HFBackend(str(tiny_model)))

    def words(text: str) -> int:
        return len(text.split())

    source = " ".join(FACTS)
    reference = summarizer.extractive.summarize("", FACTS, 40, words)
    good = "Ana lands in Lisbon 7:30 May 3; sister Ana in Oslo since 2021 at Equinor; Bob 14:00 room 42."
    lossy = "Ana has travel plans and there is a meeting later."
    assert summarizer.accepts(good, source, reference, 40, words)
    assert not summarizer.accepts(lossy, source, reference, 40, words)
    assert not summarizer.accepts(good, source, reference, 5, words), "too long for the budget"
    assert not summarizer.accepts("  ", source, reference, 40, words)


def test_summaries_run_detached_from_the_chat_cache(tiny_model: Path) -> None:
    backend = HFBackend(str(tiny_model))
    chat = Chat(backend, Memory(max_tokens=300, reserve_output=20))
    chat.send("Ana lands in Lisbon at 7:30.", max_new_tokens=6)
    kept = backend.cached_tokens
    ModelSummarizer(backend).summarize("", FACTS, 40, backend.tokenizer.count)
    assert backend.cached_tokens == kept
    assert chat.send("And Bob?", max_new_tokens=6).stats["reused_tokens"] > 0


def test_model_summarizer_needs_a_model(tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FINITE_MEMORY_SUMMARY_MODEL", raising=False)
    with pytest.raises(ValueError, match=r"needs a chat model.*FINITE_MEMORY_SUMMARY_MODEL"):
        ModelSummarizer()
    monkeypatch.setenv("FINITE_MEMORY_SUMMARY_MODEL", f"hf:{tiny_model}")
    by_name = load_plugin("summarizers", "model")()  # as a policy builds summarizer="model"
    assert by_name.name == "model" and by_name.backend.name == f"hf:{tiny_model}"
    with pytest.raises(ValueError, match="min_fact_recall"):
        ModelSummarizer("hf:x", min_fact_recall=2)


def test_facts_are_names_and_numbers() -> None:
    assert facts("Then Ana paid 12.50 at 7:30 in Lisbon. Thanks!") == {"Ana", "12.50", "7:30", "Lisbon"}


def test_importance_policy_keeps_fact_turns_by_attention(scorer: AttentionScorer, tmp_path: Path) -> None:
    memory = Memory("importance", max_tokens=160, reserve_output=0, scorer="attention", recent_turns=1)
    for i in range(4):
        memory.add("user", FACTS[i])
        memory.add("assistant", FILLER[i])
        memory.add("user", FILLER[(i + 1) % 4])
        memory.add("assistant", FILLER[(i + 2) % 4])
    kept = " ".join(m.content for m in memory.context().messages)
    assert sum(fact in kept for fact in FACTS) >= 3, kept
    memory.save(tmp_path / "m.json")
    assert Memory.load(tmp_path / "m.json").policy.options()["scorer"] == "attention"


def test_rolling_summary_with_the_model_summarizer_keeps_names_and_numbers(
    tiny_model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    backend = HFBackend(str(tiny_model))
    summarizer = ModelSummarizer(backend)
    memory = Memory("rolling_summary", max_tokens=200, reserve_output=0, summarizer=summarizer, summary_tokens=80)
    memory.use_tokenizer(backend.tokenizer)
    for i in range(4):
        memory.add("user", FACTS[i])
        memory.add("assistant", FILLER[i])
    ctx = memory.context()
    assert ctx.tokens <= memory.budget and ctx.stats.summary_tokens > 0
    assert summarizer.calls >= 1 and summarizer.fallbacks == summarizer.calls  # a random model: extractive kept
    assert {"Ana", "Lisbon", "7:30"} <= facts(ctx.messages[0].content)  # the summary of the evicted turns
    memory.save(tmp_path / "m.json")
    monkeypatch.setenv("FINITE_MEMORY_SUMMARY_MODEL", str(tiny_model))
    back = Memory.load(tmp_path / "m.json")
    assert back.policy.options()["summarizer"] == "model"


def test_missing_minilm_weights_name_the_extra_that_brings_them(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from finite_memory_hf import _minilm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == _minilm.PACKAGE else real(name))
    packages = Path(__file__).resolve().parents[2]
    with pytest.raises(ModuleNotFoundError, match=re.escape(f"run: pip install '{packages}/finite-memory-hf[minilm]'")):
        _minilm.minilm_path()


def test_the_declared_transformers_floor_has_the_cache_argument_the_kv_reuse_passes() -> None:
    import inspect
    from importlib.metadata import requires, version

    from transformers import LlamaModel

    floor = next(r for r in requires("finite-memory-hf") or [] if r.startswith("transformers"))
    assert floor == "transformers>=5.24"  # 5.23 models take only past_key_values=, and ignore cache= in **kwargs
    assert tuple(int(part) for part in version("transformers").split(".")[:2]) >= (5, 24)
    assert "cache" in inspect.signature(LlamaModel.forward).parameters
