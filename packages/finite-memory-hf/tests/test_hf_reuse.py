"""Cross-turn KV-cache reuse on a real (tiny) model: same greedy replies, far less prefill, a cache that is right."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch
from _hf_models import cache_matches_fresh_prefill, template_ids

from finite_memory import BackendError, Chat, Memory, load_backend
from finite_memory_hf import HFBackend

TOPICS = ["Lisbon", "my sister Ana", "the 42 bus", "coffee at 7:30", "a trip to Oslo", "the cat Miso"]


def question(i: int) -> str:
    return f"Turn {i}: tell me about {TOPICS[i % len(TOPICS)]} and the number {1000 + 37 * i}, please."


def memory() -> Memory:
    return Memory("sliding", max_tokens=360, reserve_output=24, system="You are brief.", low_water=0.5)


@pytest.fixture(scope="module")
def pair(tiny_model: Path) -> tuple[HFBackend, HFBackend]:
    """The same model twice: one reusing its cache, one prefilling every prompt from scratch."""
    return HFBackend(str(tiny_model)), HFBackend(str(tiny_model), reuse_cache=False)


def test_greedy_replies_with_reuse_equal_fresh_prefill_and_prefill_far_less(pair: tuple[HFBackend, HFBackend]) -> None:
    reusing, fresh = pair
    reusing.reset_cache()
    a, b = Chat(reusing, memory()), Chat(fresh, memory())
    prefill_reuse = prefill_fresh = 0
    for i in range(14):
        ra = a.send(question(i), max_new_tokens=12, temperature=0)
        rb = b.send(question(i), max_new_tokens=12, temperature=0)
        assert ra.text == rb.text, f"turn {i}: reuse changed the greedy reply"
        assert ra.usage == rb.usage
        assert ra.stats["prefill_tokens"] + ra.stats["reused_tokens"] == ra.usage["prompt_tokens"]
        assert rb.stats["reused_tokens"] == 0 and rb.stats["prefill_tokens"] == rb.usage["prompt_tokens"]
        assert fresh.cached_tokens == []  # a backend that does not reuse keeps no cache
        assert ra.stats["generated_tokens"] == ra.usage["completion_tokens"] > 0
        assert {"prefill_ms", "decode_ms", "total_ms"} <= set(ra.stats)
        prefill_reuse += ra.stats["prefill_tokens"]
        prefill_fresh += rb.stats["prefill_tokens"]
        assert cache_matches_fresh_prefill(reusing), f"turn {i}: the kept cache is not what a fresh pass gives"
    assert a.memory.context().stats.dropped > 0, "the conversation outgrew the budget: evictions happened"
    assert prefill_reuse < 0.4 * prefill_fresh, (prefill_reuse, prefill_fresh)


def test_budget_holds_in_exact_template_tokens(pair: tuple[HFBackend, HFBackend]) -> None:
    backend, _ = pair
    chat = Chat(backend, memory())
    assert chat.memory.tokenizer is backend.tokenizer
    for i in range(13):
        reply = chat.send(question(i) * (1 + i % 3), max_new_tokens=10)
        ctx = chat.memory.context()
        exact = len(template_ids(backend, ctx.messages))
        assert ctx.tokens == exact <= chat.memory.budget
        assert reply.usage["prompt_tokens"] <= chat.memory.budget
        assert reply.stats["context_tokens"] == reply.usage["prompt_tokens"]


def test_cache_is_right_after_a_failed_turn(pair: tuple[HFBackend, HFBackend], monkeypatch: pytest.MonkeyPatch) -> None:
    backend, fresh = pair
    backend.reset_cache()
    chat, check = Chat(backend, memory()), Chat(fresh, memory())
    for i in range(4):
        assert chat.send(question(i), max_new_tokens=8).text == check.send(question(i), max_new_tokens=8).text
    before = chat.memory.messages

    calls = {"n": 0}
    real_forward = backend.model.forward

    def failing_forward(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:  # fail mid-reply, after the cache took the prompt and two tokens
            raise RuntimeError("device lost")
        return real_forward(*args, **kwargs)

    monkeypatch.setattr(backend.model, "forward", failing_forward)
    with pytest.raises(BackendError, match="device lost"):
        chat.send("this turn fails", max_new_tokens=8)
    monkeypatch.undo()
    assert chat.memory.messages == before, "a failed turn leaves the memory as it was"
    assert backend.cached_tokens == [] and cache_matches_fresh_prefill(backend)

    # a cancelled stream: the cache keeps what it ran, and the next turn is still exact
    pieces = chat.stream("a turn cancelled after two pieces", max_new_tokens=8)
    next(pieces), next(pieces)
    pieces.close()
    assert chat.memory.messages == before
    assert cache_matches_fresh_prefill(backend)
    for i in range(4, 7):
        ra, rb = chat.send(question(i), max_new_tokens=8), check.send(question(i), max_new_tokens=8)
        assert ra.text == rb.text
        assert ra.stats["reused_tokens"] > 0
        assert cache_matches_fresh_prefill(backend)


def test_cache_is_reused_after_a_checkpoint_reload(pair: tuple[HFBackend, HFBackend], tmp_path: Path) -> None:
    backend, fresh = pair
    backend.reset_cache()
    chat, check = Chat(backend, memory()), Chat(fresh, memory())
    for i in range(12):
        chat.send(question(i), max_new_tokens=8)
        check.send(question(i), max_new_tokens=8)
    chat.memory.save(tmp_path / "chat.json")
    reloaded = Chat(backend, Memory.load(tmp_path / "chat.json"))
    ra, rb = reloaded.send(question(12), max_new_tokens=8), check.send(question(12), max_new_tokens=8)
    assert ra.text == rb.text
    assert ra.stats["reused_tokens"] > 0.5 * ra.usage["prompt_tokens"], "the reloaded memory builds the same prompt"
    assert cache_matches_fresh_prefill(backend)
    # a brand-new backend process (nothing kept) gives the same reply from a full prefill
    cold = HFBackend(backend.name.removeprefix("hf:"))
    again = Chat(cold, Memory.load(tmp_path / "chat.json")).send(question(12), max_new_tokens=8)
    assert again.text == ra.text and again.stats["reused_tokens"] == 0


def test_stream_and_async_give_the_same_turns(pair: tuple[HFBackend, HFBackend]) -> None:
    backend, fresh = pair
    backend.reset_cache()
    a, b = Chat(backend, memory()), Chat(fresh, memory())
    pieces = list(a.stream(question(0), max_new_tokens=10))
    assert len(pieces) > 1 and "".join(pieces) == a.last_reply.text == b.send(question(0), max_new_tokens=10).text

    async def go() -> tuple[str, str]:
        streamed = [p async for p in a.astream(question(1), max_new_tokens=10)]
        sent = await a.asend(question(2), max_new_tokens=10)
        return "".join(streamed), sent.text

    streamed, sent = asyncio.run(go())
    assert streamed == b.send(question(1), max_new_tokens=10).text
    assert sent == b.send(question(2), max_new_tokens=10).text
    assert a.last_reply is not None and a.last_reply.stats["reused_tokens"] > 0


def test_sampling_is_seeded_and_options_are_checked(pair: tuple[HFBackend, HFBackend]) -> None:
    backend, _ = pair
    chat = Chat(backend, memory())
    first = chat.send("hello", max_new_tokens=12, temperature=1.5, seed=7, top_k=50, top_p=0.9).text
    chat2 = Chat(backend, memory())
    assert chat2.send("hello", max_new_tokens=12, temperature=1.5, seed=7, top_k=50, top_p=0.9).text == first
    with pytest.raises(TypeError, match="unknown generation options: beams"):
        chat.send("x", beams=2)
    with pytest.raises(ValueError, match="top_p must be in"):
        chat.send("x", temperature=1.0, top_p=0)


def test_attention_sink_moves_kept_turns_instead_of_prefilling_them(tiny_model: Path) -> None:
    exact = HFBackend(str(tiny_model))
    sink = load_backend(f"hf:{tiny_model}", attention_sink=True)
    a, b = Chat(exact, memory()), Chat(sink, memory())
    moved_turns = 0
    prefill_exact = prefill_sink = 0
    for i in range(16):
        ra = a.send(question(i), max_new_tokens=8)
        rb = b.send(question(i), max_new_tokens=8)
        prefill_exact += ra.stats["prefill_tokens"]
        prefill_sink += rb.stats["prefill_tokens"]
        if rb.stats["moved_tokens"]:
            moved_turns += 1
            assert rb.stats["prefill_tokens"] < ra.stats["prefill_tokens"] / 2
            # layer 0 sees only embeddings: a moved key re-rotated to its new position is exact there
            kept = sink._kv.cache.layers[0].keys
            with torch.inference_mode():
                fresh = sink.model(input_ids=torch.tensor([sink.cached_tokens]), use_cache=True).cache
            assert kept.shape == fresh.layers[0].keys.shape
            assert torch.allclose(kept, fresh.layers[0].keys, atol=1e-4)
    assert moved_turns >= 1 and prefill_sink < prefill_exact


def test_fresh_backend_per_turn_gives_the_reused_reply(tiny_model: Path) -> None:
    """The literal check: a newly loaded backend for one prompt replies like the long-lived one."""
    backend = HFBackend(str(tiny_model))
    chat = Chat(backend, memory())
    for i in range(12):
        chat.send(question(i), max_new_tokens=8)
    context = chat.memory.context()
    reused = backend.complete(context.messages, max_new_tokens=8)
    cold = HFBackend(str(tiny_model)).complete(context.messages, max_new_tokens=8)
    assert reused.text == cold.text and reused.stats["reused_tokens"] > 0 == cold.stats["reused_tokens"]


def test_sliding_window_attention_model_reuses_its_cache_exactly(tiny_model: Path, tmp_path: Path) -> None:
    """A Mistral-style model whose attention sees only the last 24 tokens: the cache still rolls back."""
    from transformers import AutoTokenizer, MistralConfig, MistralForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=24,
        max_position_embeddings=2048,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(1)
    MistralForCausalLM(config).save_pretrained(tmp_path / "mistral")
    tokenizer.save_pretrained(tmp_path / "mistral")
    a = Chat(HFBackend(str(tmp_path / "mistral")), memory())
    b = Chat(HFBackend(str(tmp_path / "mistral"), reuse_cache=False), memory())
    reused = prompts = 0
    for i in range(12):
        ra, rb = a.send(question(i), max_new_tokens=8), b.send(question(i), max_new_tokens=8)
        assert ra.text == rb.text, f"turn {i}"
        reused += ra.stats["reused_tokens"]
        prompts += ra.usage["prompt_tokens"]
    assert reused > 0.6 * prompts, (reused, prompts)  # most of each prompt came from the cache
