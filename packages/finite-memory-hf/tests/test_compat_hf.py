"""``finite_memory.compat.HuggingFaceBackend``: the reference's local-model backend on a tiny model (no download)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from finite_memory.compat import CompleteFiniteMemoryLLM, HuggingFaceBackend


@pytest.fixture(scope="module")
def base_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model without its chat template, like gpt2."""
    folder = tmp_path_factory.mktemp("base") / "tiny-base"
    shutil.copytree(tiny_model, folder)
    (folder / "chat_template.jinja").unlink()
    return folder


@pytest.fixture(scope="module")
def backend(base_model: Path) -> HuggingFaceBackend:
    return HuggingFaceBackend(str(base_model), device="cpu")


def test_generate_is_greedy_and_reuses_the_cache_across_calls(backend: HuggingFaceBackend) -> None:
    prompt = torch.tensor([backend.encode("hello the city of Lisbon")])
    first = backend.generate(prompt, max_new_tokens=6)["sequences"]
    assert isinstance(first, torch.Tensor) and first[0, : prompt.shape[1]].tolist() == prompt[0].tolist()
    with torch.inference_mode():
        reference = backend.model.generate(prompt, max_new_tokens=6, do_sample=False, pad_token_id=0)
    new = first[0, prompt.shape[1] :].tolist()
    assert new == reference[0, prompt.shape[1] : prompt.shape[1] + len(new)].tolist()
    hits = backend.get_cache_stats()["cache_hits"]
    again = backend.generate(prompt, max_new_tokens=6)["sequences"]
    assert again.tolist() == first.tolist()  # served from the kept cache, same greedy ids
    stats = backend.get_cache_stats()
    assert stats["cache_hits"] == hits + 1 and stats["cached_tokens"] >= prompt.shape[1]
    assert backend.generate([prompt[0].tolist()], max_new_tokens=2)["sequences"].shape[0] == 1


def test_generate_stream_yields_token_dicts_and_ends_final(backend: HuggingFaceBackend) -> None:
    prompt = torch.tensor([backend.encode("tell me about the dog")])
    pieces = list(backend.generate_stream(prompt, max_new_tokens=5))
    assert 0 < len(pieces) <= 5 and pieces[-1]["is_final"] and not any(p["is_final"] for p in pieces[:-1])
    assert [p["token_id"] for p in pieces] == backend.generate(prompt, max_new_tokens=5)["sequences"][0][
        prompt.shape[1] :
    ].tolist()
    assert all(p["token_text"] == backend.decode([p["token_id"]]) for p in pieces)


def test_bad_generate_arguments_are_refused(backend: HuggingFaceBackend) -> None:
    with pytest.raises(TypeError, match="greedily"):
        backend.generate(torch.tensor([[1, 2]]), max_new_tokens=2, temperature=0.7)
    with pytest.raises(ValueError, match="non-empty"):
        backend.generate(torch.tensor([[]], dtype=torch.long), max_new_tokens=2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        backend.generate(torch.tensor([[1, 2]]), max_new_tokens=-1)


def test_without_the_cache_nothing_is_kept_or_counted(base_model: Path) -> None:
    plain = HuggingFaceBackend(str(base_model), enable_kv_cache=False)
    prompt = torch.tensor([[5, 6, 7]])
    plain.generate(prompt, max_new_tokens=3)
    plain.generate(prompt, max_new_tokens=3)
    assert plain.get_cache_stats() == {"cache_hits": 0, "cache_misses": 0, "cached_tokens": 0}


def test_a_chat_on_a_base_model_uses_the_transcript_and_reuses_the_prefix(backend: HuggingFaceBackend) -> None:
    llm = CompleteFiniteMemoryLLM(backend, max_tokens=400, memory_policy="sliding")
    assert llm.chat_backend is backend.chat_backend
    hits = backend.get_cache_stats()["cache_hits"]
    for i in range(4):
        result = llm.chat(f"Message {i} about the city", max_new_tokens=4)
        assert result["context_length"] <= 400
    prompt = backend.decode(list(llm.token_buffer))
    assert prompt.startswith("user: Message 0 about the city\nassistant:")
    assert backend.get_cache_stats()["cache_hits"] >= hits + 3  # each later turn extends the last prompt
    assert llm.stats.cache_hits >= 3


def test_a_chat_model_keeps_its_own_template(tiny_model: Path) -> None:
    llm = CompleteFiniteMemoryLLM(HuggingFaceBackend(str(tiny_model)), max_tokens=200)
    result = llm.chat("hello", max_new_tokens=2)
    tokenizer = llm.backend.tokenizer
    ids = tokenizer.apply_chat_template([{"role": "user", "content": "hello"}], add_generation_prompt=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    assert result["context_length"] == len(ids)
