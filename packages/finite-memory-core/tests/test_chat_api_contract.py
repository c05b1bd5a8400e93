"""Chat contracts the API backends rely on, with the dependency-free echo backend.

Cancelling ``Chat.astream`` on a ``SyncBackend`` (the hf backend) closes its stream once
the running step ends, so the next turn finds the backend free; an uncalibrated estimate
fills half the budget on its first turn; ``stable_prefix`` and cache hints; NaN options.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from finite_memory import Chat, Completion, Memory, Message, SyncBackend
from finite_memory.stores import open_store
from finite_memory.testing import EchoBackend


class OneAtATime(SyncBackend):
    """A local model that refuses a second generation while one is running (as the hf backend does)."""

    name = "busy:test"

    def __init__(self) -> None:
        self.busy = threading.Lock()
        self.closed = 0

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]:
        if not self.busy.acquire(blocking=False):
            raise RuntimeError("already generating")
        try:
            for word in ("one", " two", " three", " four"):
                time.sleep(0.05)
                yield word
            yield Completion("one two three four", finish_reason="stop")
        finally:
            self.closed += 1
            self.busy.release()


def test_cancelling_astream_on_a_sync_backend_frees_it_for_the_next_turn() -> None:
    backend = OneAtATime()
    chat = Chat(backend, Memory(max_tokens=512, reserve_output=32))

    async def main() -> str:
        async def consume() -> None:
            async for _ in chat.astream("hello"):
                await asyncio.sleep(0)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.07)  # inside the second step
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return "".join([piece async for piece in chat.astream("again")])

    assert asyncio.run(main()) == "one two three four", "no 'generator already executing', no 'already generating'"
    assert backend.closed == 2 and [m.content for m in chat.memory.messages] == ["again", "one two three four"]


def test_the_first_uncalibrated_turn_fills_half_the_budget_then_the_whole() -> None:
    memory = Memory(max_tokens=1000, reserve_output=200)
    chat = Chat(EchoBackend(), memory)
    assert chat.send("first").stats["budget"] == 400
    assert chat.send("second").stats["budget"] == 800
    ctx = memory.context()
    assert ctx.stable_prefix == len(ctx.messages) == 4  # answered turns, a prefix of the next context
    assert Memory(system="s").context().stable_prefix == 1


def test_a_cut_reply_is_marked_and_tool_results_continue_the_turn() -> None:
    chat = Chat(EchoBackend(), Memory(max_tokens=512, reserve_output=32))
    reply = chat.send("a b c d e f", max_new_tokens=2)
    assert reply.finish_reason == "stop" and not reply.cut_off
    with pytest.raises(TypeError, match="tool_results"):
        chat.send(tool_results="oops")
    with pytest.raises(ValueError, match="answer no open tool call"):
        chat.send(tool_results={"call_9": "x"})


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_sqlite_timeout_must_be_finite(tmp_path: Any, value: str) -> None:
    with pytest.raises(ValueError, match="finite number of seconds > 0"):
        open_store(f"sqlite:///{tmp_path}/x.db?timeout={value}")
