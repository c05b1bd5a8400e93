"""One turn through the proxy, as ``finite_memory.Chat`` runs it: build, call, archive on success."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from finite_memory import Backend, BackendError, Completion, Context, Memory, Message
from finite_memory._chat import reply_message

#: Archives a finished turn's messages with the context they answer (see :func:`archiver`).
Archive = Callable[[list[Message], Context], Awaitable[None]]


async def run_turn(
    memory: Memory,
    backend: Backend,
    new: Sequence[Message],
    options: dict[str, object],
    *,
    stream: bool,
    archive: Archive | None,
    system: str | None = None,
) -> AsyncIterator[Context | str | Completion]:
    """Build the context with the turn's ``new`` messages, call ``backend``, archive on success.

    Yields the :class:`Context` first, then (when ``stream``) the reply's text pieces,
    and last the :class:`Completion`, once it is archived. ``system`` is a new system
    prompt for the session, archived with the turn. ``archive`` (see :func:`archiver`)
    archives the new messages, the new system prompt and the reply together, only if no
    other writer changed the session since the context was built
    (:class:`~finite_memory.stores.StoreConflict` otherwise); a turn that fails or is
    cancelled before that leaves the memory exactly as it was. Without it (stateless)
    nothing is archived.
    """
    memory._stamp(list(new))  # a tool result that answers no call of the turn: ValueError before any call
    if backend.tokenizer is not None and memory.tokenizer is not backend.tokenizer:
        memory.use_tokenizer(backend.tokenizer)
    saved_system = memory.system
    if system is not None:
        memory.system = system  # placed first in this context; archived below with the turn
    try:
        continues = bool(new) and new[0].role != "user"  # tool results go on the newest turn
        context = memory._build(_query(memory, new), new, continues=continues)
    finally:
        memory.system = saved_system
    yield context

    if stream:
        completion = None
        pieces = backend.astream(context.messages, **options)
        try:
            async for item in pieces:
                if isinstance(item, Completion):
                    completion = item
                else:
                    yield item
        finally:
            aclose = getattr(pieces, "aclose", None)
            if aclose is not None:
                await aclose()
        if completion is None:
            raise BackendError(f"{backend.name} ended its stream without a finished reply")
    else:
        completion = await backend.acomplete(context.messages, **options)

    prompt_tokens = completion.usage.get("prompt_tokens")
    calibrate = getattr(memory.tokenizer, "calibrate", None)
    if calibrate is not None and isinstance(prompt_tokens, int) and prompt_tokens > 0:
        calibrate(context.messages, prompt_tokens)  # before the archive, which may store it with the turn
    if archive is not None:
        reply = reply_message(completion, backend.name)
        batch = [Message("system", system)] if system is not None else []
        await archive([*batch, *new, reply], context)
    yield completion


def archiver(memory: Memory, *, in_thread: bool) -> Archive:
    """How a turn is archived: ``memory.extend(batch, context=context, if_unchanged=True)``.

    The policy state computed for the context (a summary, the window's start) is committed
    with the batch, in the same store transaction.

    ``in_thread`` runs it off the event loop, for a store whose writes may wait on a disk
    (fsync, checkpoint) or a network; a cancelled request then waits for the write to
    finish, so the next turn on the session never starts while it still runs.
    """

    async def archive(batch: list[Message], context: Context) -> None:
        if not in_thread:
            memory.extend(batch, context=context, if_unchanged=True)
            return
        write = asyncio.ensure_future(
            asyncio.to_thread(functools.partial(memory.extend, batch, context=context, if_unchanged=True))
        )
        cancelled = False
        while not write.done():
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        write.result()

    return archive


def _query(memory: Memory, new: Sequence[Message]) -> str | None:
    """What the reply is about: the newest user message, in this turn or (a tool loop) the last one."""
    for message in reversed(new):
        if message.role == "user":
            return message.content
    turns = memory.turns
    if turns:
        for message in reversed(turns[-1].messages):
            if message.role == "user":
                return message.content
    return None
