"""Token counts: calibration from reported usage, and exact counts from a /tokenize endpoint."""

from __future__ import annotations

import pytest
from _api_chats import PROVIDERS, make_backend
from _api_server import FakeLLMServer, count_tokens

from finite_memory import ApproxTokenizer, Chat, Memory, Message
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.synthetic import generate_conversation
from finite_memory_api import OpenAIBackend, ServerTokenizer


def user_lines(seed: int) -> list[str]:
    return [line.content for line in dialogue(generate_conversation(seed, sessions=3)) if line.role == "user"]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("seed", [101, 202, 303])
def test_calibrated_estimate_is_within_5_percent_after_3_turns(server: FakeLLMServer, provider: str, seed: int) -> None:
    memory = Memory(max_tokens=1024, reserve_output=128, system="You are a helpful assistant who remembers details.")
    errors = []
    with Chat(make_backend(server, provider), memory) as chat:
        for text in user_lines(seed)[:15]:
            estimate = memory._build(text, [Message("user", text)]).tokens  # what the memory budgets with
            real = chat.send(text).usage["prompt_tokens"]
            errors.append(abs(estimate - real) / real)
    assert isinstance(memory.tokenizer, ApproxTokenizer) and memory.tokenizer.scale != 1.0
    assert sum(errors[3:]) / len(errors[3:]) < errors[0], "calibration must beat the raw estimate"
    assert max(errors[3:]) <= 0.05, [f"{e:.1%}" for e in errors]


@pytest.mark.parametrize("flavor", ["vllm", "llama.cpp"])
def test_tokenize_endpoint_gives_exact_counts(server: FakeLLMServer, flavor: str) -> None:
    backend = OpenAIBackend("m", base_url=server.url + "/v1", tokenize=flavor)  # type: ignore[arg-type]
    tokenizer = backend.tokenizer
    assert isinstance(tokenizer, ServerTokenizer) and tokenizer.url == server.url + "/tokenize"
    tokenizer.per_message = tokenizer.per_prompt = 3  # the test server's chat-format overhead
    memory = Memory(max_tokens=1024, reserve_output=128, system="Be exact.")
    with Chat(backend, memory) as chat:
        assert memory.tokenizer is tokenizer
        for text in user_lines(7)[:5]:
            context = memory._build(text, [Message("user", text)])
            reply = chat.send(text)
            assert context.tokens == reply.usage["prompt_tokens"], "content counted by the server's own tokenizer"
    assert tokenizer.count("Hello, wonderful world!") == count_tokens("Hello, wonderful world!")
    tokenize_calls = server.count("/tokenize")
    tokenizer.count("Hello, wonderful world!")
    assert server.count("/tokenize") == tokenize_calls, "counts are cached per text"
    assert tokenizer.count("") == 0
    body = next(r["body"] for r in server.requests if r["path"] == "/tokenize")
    assert ("prompt" in body) == (flavor == "vllm") and ("content" in body) == (flavor == "llama.cpp")


def test_tokenize_errors_are_backend_errors(server: FakeLLMServer) -> None:
    from finite_memory import BackendError

    backend = make_backend(server, "openai", tokenize="vllm")
    server.faults = ["400"]
    with pytest.raises(BackendError, match="HTTP 400"):
        backend.tokenizer.count("x")  # type: ignore[union-attr]
    backend.close()


@pytest.mark.parametrize(
    "answer", [{"count": -100000}, {"count": 10**9}, {"count": "12"}, {"count": True}, {"tokens": "abc"}, ["x"], {}]
)
def test_an_unbelievable_tokenize_answer_is_a_backend_error(server: FakeLLMServer, answer: object) -> None:
    from finite_memory import BackendError

    backend = make_backend(server, "openai", tokenize="vllm")
    server.tokenize_answer = answer
    memory = Memory(max_tokens=1024, reserve_output=128)
    with pytest.raises(BackendError, match="no believable token count"):
        Chat(backend, memory).send("how many tokens is this?")
    assert len(memory) == 0
