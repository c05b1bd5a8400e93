"""The hf backend's loading, exact counting and errors, through the real from_pretrained path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _hf_models import template_ids

from finite_memory import Backend, BackendError, Chat, Memory, Message, Tokenizer, load_backend, plugins
from finite_memory_hf import ChatTemplateTokenizer, HFBackend
from finite_memory_hf.testing import CHAT_TEMPLATE


@pytest.fixture(scope="module")
def backend(tiny_model: Path) -> HFBackend:
    loaded = load_backend(f"hf:{tiny_model}")
    assert isinstance(loaded, HFBackend)
    return loaded


def test_registered_plugins() -> None:
    assert plugins("backends")["hf"].value == "finite_memory_hf.backend:HFBackend"
    assert "minilm" in plugins("embedders") and "attention" in plugins("scorers") and "model" in plugins("summarizers")


def test_backend_and_tokenizer_follow_the_protocols(backend: HFBackend) -> None:
    assert isinstance(backend, Backend) and isinstance(backend.tokenizer, Tokenizer)
    assert backend.name.startswith("hf:") and backend.max_context == 4096


def test_counts_are_the_template_tokens_the_model_sees(backend: HFBackend) -> None:
    tok = backend.tokenizer
    calls = [{"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]
    messages = [
        Message("system", "You are brief."),
        Message("user", "I moved to Lisbon in May 2023. Ünïcödé and 日本語 too."),
        Message("assistant", "", tool_calls=calls),
        Message("tool", "18 C, sunny", tool_call_id="c1"),
        Message("assistant", "Noted!"),
    ]
    assert tok.count_messages(messages) == len(template_ids(backend, messages))
    assert tok.count_messages([]) == tok.base() == len(tok.encode("<|im_start|>assistant\n"))
    # ChatML puts special tokens between messages, so the per-message shares add up exactly
    assert tok.base() + sum(tok.count_message(m) for m in messages) == tok.count_messages(messages)
    assert tok.count("Lisbon") == len(tok.hf.encode("Lisbon", add_special_tokens=False))


def test_per_message_counts_are_cached(backend: HFBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = backend.tokenizer
    message = Message("user", "a message counted once " * 3)
    first = tok.count_message(message)
    rendered: list[int] = []
    real = tok.render
    monkeypatch.setattr(tok, "render", lambda ms: rendered.append(len(ms)) or real(ms))
    assert tok.count_message(Message("user", "a message counted once " * 3)) == first
    assert rendered == []
    # the prompt the memory counted is not tokenized again by the backend
    prompt = [Message("user", "hi there")]
    tok.count_messages(prompt)
    rendered.clear()
    tok.encode_messages(prompt)
    assert rendered == []


def test_memory_counts_with_the_backend_tokenizer(backend: HFBackend) -> None:
    chat = Chat(backend, Memory(max_tokens=200, reserve_output=40, system="Be brief."))
    chat.send("Where is Lisbon?", max_new_tokens=6)
    ctx = chat.memory.context()
    assert ctx.tokens == len(template_ids(backend, ctx.messages))


def test_a_missing_model_says_so(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match=r"cannot load model .*nope.* is not a folder"):
        load_backend(f"hf:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackendError, match="is a folder but holds no loadable model"):
        load_backend(f"hf:{tmp_path / 'empty'}")


def test_a_tokenizer_without_chat_template_is_refused_unless_one_is_given(tiny_model: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    (plain / "chat_template.jinja").unlink(missing_ok=True)
    config = json.loads((plain / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (plain / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"has no chat template.*chat_template="):
        HFBackend(str(plain))
    given = HFBackend(str(plain), chat_template=CHAT_TEMPLATE)
    assert given.tokenizer.count_messages([Message("user", "hi")]) > 0
    with pytest.raises(TypeError, match="chat_template must be a Jinja template string"):
        ChatTemplateTokenizer(given.tokenizer.hf, chat_template=3)  # type: ignore[arg-type]


def test_a_context_longer_than_the_model_allows_fails_the_turn_cleanly(tiny_model: Path) -> None:
    backend = HFBackend(str(tiny_model), max_context=64)
    chat = Chat(backend, Memory(max_tokens=400, reserve_output=16))
    with pytest.raises(ValueError, match=r"longer than the model allows \(64 tokens\).*max_tokens <= 64"):
        chat.send("word " * 80)
    assert len(chat.memory) == 0
    with pytest.raises(ValueError, match="above what the model allows"):
        HFBackend(str(tiny_model), max_context=10_000)
    with pytest.raises(ValueError, match="dtype must be one of"):
        HFBackend(str(tiny_model), dtype="int3")


def test_one_turn_at_a_time(backend: HFBackend) -> None:
    first = backend.stream([Message("user", "hello")], max_new_tokens=4)
    next(first)
    with pytest.raises(BackendError, match="already generating"):
        backend.complete([Message("user", "hello")], max_new_tokens=4)
    first.close()
    assert backend.complete([Message("user", "hello")], max_new_tokens=4).stats["generated_tokens"] >= 1


def test_attention_sink_needs_rotary_positions(tiny_model: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    config = GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, n_positions=256)
    GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    assert HFBackend(str(tmp_path / "gpt2")).complete([Message("user", "hi")], max_new_tokens=3).usage
    with pytest.raises(ValueError, match=r"attention_sink does not work with .* no rotary position embedding"):
        HFBackend(str(tmp_path / "gpt2"), attention_sink=True)


def test_importing_the_package_is_cheap_and_loads_no_torch() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import finite_memory_hf; "
        "ms = (time.perf_counter() - t) * 1000; "
        "print(ms, 'torch' in sys.modules or 'transformers' in sys.modules)"
    )
    timings = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
        assert out[1] == "False"
        timings.append(float(out[0]))
    assert min(timings) < 30, timings


STRICT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'tool' %}{{ raise_exception('no tool role') }}{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def test_a_template_that_insists_on_alternating_roles(tiny_model: Path) -> None:
    backend = HFBackend(str(tiny_model), chat_template=STRICT_TEMPLATE)
    tok = backend.tokenizer
    # an assistant message cannot be rendered alone: its share is what it adds after a user message
    alone = Message("assistant", "Lisbon is lovely in May.")
    pair = [Message("user", "Where?"), alone]
    assert tok.base() + sum(tok.count_message(m) for m in pair) == tok.count_messages(pair)
    # a tool message renders nowhere in this template: its text plus a user message's overhead
    tool = Message("tool", "18 C", tool_call_id="c1")
    overhead = tok.count_message(Message("user", "hello")) - tok.count("hello")
    assert tok.count_message(tool) == tok.count("18 C c1") + overhead
    chat = Chat(backend, Memory(max_tokens=200, reserve_output=20))
    for i in range(8):
        chat.send(f"question {i} about the trip to Oslo in June", max_new_tokens=6)
        assert chat.memory.context().tokens <= chat.memory.budget
    with pytest.raises(ValueError, match=r"rejects these messages \(roles: assistant, assistant\).*must alternate"):
        tok.count_messages([alone, alone])
    system_chat = Chat(backend, Memory(max_tokens=200, reserve_output=20, system="Be brief."))
    with pytest.raises(ValueError, match="some templates refuse a system message"):
        system_chat.send("hi")
    assert len(system_chat.memory) == 0
