from __future__ import annotations

import asyncio

import pytest

from finite_memory import ApproxTokenizer, BackendError, Chat, Memory, Message
from finite_memory.testing import EchoBackend


def snapshot(memory: Memory) -> list[Message]:
    return memory.messages


@pytest.fixture
def chat() -> Chat:
    return Chat(EchoBackend(), Memory(max_tokens=512, reserve_output=64, system="Be brief."))


def test_send_archives_the_turn_and_reports_stats(chat: Chat) -> None:
    reply = chat.send("I moved to Lisbon in May.", temperature=0)
    assert reply.text == "echo: I moved to Lisbon in May."
    assert [m.role for m in chat.memory.messages] == ["user", "assistant"]
    assert chat.memory.messages[1].content == reply.text
    assert reply.usage["prompt_tokens"] > 0
    for key in ("policy", "policy_ms", "fallback", "candidates", "dropped", "summary_tokens", "context_tokens"):
        assert key in reply.stats
    assert reply.stats["generated_tokens"] == 7
    sent = chat.backend.calls[-1]  # type: ignore[attr-defined]
    assert [m.role for m in sent] == ["system", "user"]


def test_generation_options_reach_the_backend_and_are_checked(chat: Chat) -> None:
    assert chat.send("one two three four five", max_new_tokens=3).text == "echo: one two"
    with pytest.raises(ValueError, match="max_new_tokens must be a positive int"):
        chat.send("x", max_new_tokens=0)
    for bad in (-1, float("nan"), float("inf")):  # NaN passed every comparison and was sent as invalid JSON
        with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
            chat.send("x", temperature=bad)
    assert len(chat.memory) == 2


def test_stream_yields_pieces_then_archives(chat: Chat) -> None:
    pieces = list(chat.stream("stream this please"))
    assert "".join(pieces) == "echo: stream this please"
    assert chat.last_reply is not None and chat.last_reply.text == "".join(pieces)
    assert len(chat.memory) == 2


def test_backend_failure_mid_stream_rolls_back() -> None:
    memory = Memory(max_tokens=512, reserve_output=64)
    Chat(EchoBackend(), memory).send("first turn")
    before = snapshot(memory)
    failing = Chat(EchoBackend(fail_after=2), memory)
    received = []
    with pytest.raises(BackendError, match="fail after 2 pieces"):
        for piece in failing.stream("this will break in the middle"):
            received.append(piece)
    assert received == ["echo:", " this"]
    assert snapshot(memory) == before
    with pytest.raises(BackendError):
        Chat(EchoBackend(fail_after=0), memory).send("no luck")
    assert snapshot(memory) == before


def test_a_cancelled_stream_leaves_no_half_answer(chat: Chat) -> None:
    stream = chat.stream("one two three four five six")
    assert next(stream) == "echo:"
    stream.close()
    assert len(chat.memory) == 0


def test_a_stream_without_a_final_completion_is_an_error() -> None:
    class Truncated(EchoBackend):
        def stream(self, messages, **options):  # type: ignore[no-untyped-def]
            yield "partial"

    chat = Chat(Truncated(), Memory())
    with pytest.raises(BackendError, match="without a finished reply"):
        list(chat.stream("hello"))
    assert len(chat.memory) == 0


def test_async_send_and_stream() -> None:
    async def run() -> tuple[str, str, int]:
        async with Chat(EchoBackend(), Memory()) as chat:
            reply = await chat.asend("async hello")
            pieces = [p async for p in chat.astream("async stream")]
            return reply.text, "".join(pieces), len(chat.memory)

    assert asyncio.run(run()) == ("echo: async hello", "echo: async stream", 4)


def test_async_failure_rolls_back() -> None:
    memory = Memory()

    async def run() -> None:
        chat = Chat(EchoBackend(fail_after=1), memory)
        async for _ in chat.astream("will fail"):
            pass

    with pytest.raises(BackendError):
        asyncio.run(run())
    assert len(memory) == 0
    with pytest.raises(BackendError):
        asyncio.run(Chat(EchoBackend(fail_after=0), memory).asend("x"))
    assert len(memory) == 0


def test_many_concurrent_turns_on_separate_memories() -> None:
    async def run() -> list[str]:
        chats = [Chat(EchoBackend(delay=0.001), Memory()) for _ in range(20)]
        return [r.text for r in await asyncio.gather(*(c.asend(f"n{i}") for i, c in enumerate(chats)))]

    assert asyncio.run(run()) == [f"echo: n{i}" for i in range(20)]


def test_usage_calibrates_the_approximate_tokenizer() -> None:
    tokenizer = ApproxTokenizer()
    chat = Chat(EchoBackend(tokens_per_word=2.0), Memory(max_tokens=4000, reserve_output=100, tokenizer=tokenizer))
    for i in range(3):
        chat.send(f"turn {i} " + "some ordinary words here " * 20)
    ctx = chat.memory.context()
    real = chat.backend._count(ctx.messages)  # type: ignore[attr-defined]
    assert abs(ctx.tokens - real) <= 0.05 * real


def test_backend_spec_and_options() -> None:
    chat = Chat("echo:demo", Memory(), tokens_per_word=1.0)
    assert chat.backend.name == "echo:demo"
    assert "echo:demo" in repr(chat)
    with pytest.raises(TypeError, match="backend options go with a backend spec"):
        Chat(EchoBackend(), Memory(), tokens_per_word=1.0)
    with pytest.raises(TypeError, match="backend must be a Backend"):
        Chat(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="memory must be a Memory"):
        Chat(EchoBackend(), memory="x")  # type: ignore[arg-type]
    with Chat(EchoBackend()) as default_chat:
        assert default_chat.memory.max_tokens == 2048


def test_a_backend_tokenizer_becomes_the_memory_tokenizer() -> None:
    exact = ApproxTokenizer(scale=1.5)
    backend = EchoBackend()
    backend.tokenizer = exact
    chat = Chat(backend, Memory())
    assert chat.memory.tokenizer is exact
