"""A Memory shared by asyncio tasks: adds from worker threads and contexts on the loop never interleave."""

from __future__ import annotations

import asyncio
from pathlib import Path

from finite_memory import Chat, Memory


async def test_tasks_share_one_memory(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db?synchronous=normal"
    mem = Memory("hybrid", max_tokens=500, store=url, session="s")

    async def task(n: int) -> None:
        for i in range(60):
            role = "user" if i % 2 == 0 else "assistant"
            await asyncio.to_thread(mem.add, role, f"task {n} line {i} topic{n}")  # blocking work off the loop
            if i % 10 == 5:
                assert mem.context(query=f"topic{n}").tokens <= mem.budget  # on the loop, between adds
            await asyncio.sleep(0)

    await asyncio.gather(*(task(n) for n in range(8)))
    assert [m.id for m in mem.messages] == list(range(480))
    rebuilt = Memory("hybrid", max_tokens=500, store=url, session="s")
    assert rebuilt.messages == mem.messages
    assert [(t.number, t.ids) for t in rebuilt.turns] == [(t.number, t.ids) for t in mem.turns]
    assert rebuilt.context("topic3").messages == mem.context("topic3").messages


async def test_concurrent_chats_on_one_memory_keep_a_consistent_archive() -> None:
    mem = Memory(max_tokens=400)
    chat = Chat(backend="echo:test", memory=mem)
    replies = await asyncio.gather(*(chat.asend(f"question {n}") for n in range(16)))
    assert sorted(r.text for r in replies) == sorted(f"echo: question {n}" for n in range(16))
    assert [m.id for m in mem.messages] == list(range(32))
    assert sorted(m.content for m in mem.messages if m.role == "user") == sorted(f"question {n}" for n in range(16))
