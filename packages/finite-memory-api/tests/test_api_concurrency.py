"""Many turns at once on one backend: 50 concurrent ``asend`` calls on separate memories."""

from __future__ import annotations

import asyncio
import time

import pytest
from _api_chats import PROVIDERS, make_backend
from _api_server import FakeLLMServer

from finite_memory import Chat, Memory


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_50_concurrent_asend_calls_all_complete(server: FakeLLMServer, provider: str) -> None:
    server.delay = 0.2  # each answer takes 0.2 s: run one after another, 50 would take 10 s
    backend = make_backend(server, provider)
    chats = [Chat(backend, Memory(max_tokens=512, reserve_output=32, session=f"user-{i}")) for i in range(50)]
    started = time.perf_counter()
    replies = await asyncio.gather(*(chat.asend(f"hello from user {i}") for i, chat in enumerate(chats)))
    elapsed = time.perf_counter() - started
    await backend.aclose()
    assert [r.text for r in replies] == [f"echo: hello from user {i}" for i in range(50)]
    for i, chat in enumerate(chats):
        assert [m.content for m in chat.memory.messages] == [f"hello from user {i}", f"echo: hello from user {i}"]
    assert len(server.requests) == 50
    assert elapsed < 4.0, f"the calls must overlap (took {elapsed:.2f} s)"


async def test_concurrent_streams_with_failures_leave_each_memory_consistent(server: FakeLLMServer) -> None:
    backend = make_backend(server, "openai")
    server.faults = ["400"] * 5  # the first five requests to arrive fail, whichever they are
    chats = [Chat(backend, Memory(max_tokens=512, reserve_output=32)) for _ in range(20)]

    async def one(i: int, chat: Chat) -> bool:
        try:
            pieces = [p async for p in chat.astream(f"stream {i}")]
        except Exception:
            return False
        return "".join(pieces) == f"echo: stream {i}"

    results = await asyncio.gather(*(one(i, chat) for i, chat in enumerate(chats)))
    await backend.aclose()
    assert results.count(False) == 5
    for ok, chat in zip(results, chats, strict=True):
        assert len(chat.memory) == (2 if ok else 0)
