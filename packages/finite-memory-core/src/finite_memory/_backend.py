"""The backend protocol: what a model provider implements to serve a ``Chat``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._message import Message
from ._tokenizer import Tokenizer


@dataclass(frozen=True, slots=True)
class Completion:
    """One finished reply from a backend.

    ``usage`` holds what the backend reported (``prompt_tokens``,
    ``completion_tokens``); ``stats`` what it measured (``prefill_tokens``,
    ``reused_tokens``, ``generated_tokens``, timings).
    """

    text: str
    tool_calls: tuple[dict[str, Any], ...] | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Backend(Protocol):
    """A chat model.

    ``stream`` and ``astream`` yield the reply's text pieces as ``str`` and end with
    the finished :class:`Completion`; a stream that breaks raises
    :class:`~finite_memory.BackendError` (a prompt over the model's window:
    :class:`~finite_memory.ContextLengthError`, which ``Chat`` answers by shrinking the
    context once). ``tokenizer`` is the model's exact tokenizer, or ``None`` when only an
    estimate is available. A backend with a true ``accepts_cache_hints`` attribute also
    gets ``stable_prefix=`` (leading messages expected unchanged next turn) and
    ``session=`` (the memory's session name) among the call options, to place prompt-cache
    breakpoints or keys.
    """

    name: str
    tokenizer: Tokenizer | None

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion: ...

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]: ...

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> Completion: ...

    def astream(self, messages: Sequence[Message], **options: Any) -> AsyncIterator[str | Completion]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class SyncBackend:
    """A base for backends that are synchronous at heart (a local model).

    Subclasses implement ``complete`` and ``stream``; the async methods run them in a
    worker thread so they never block an event loop.
    """

    name: str = "backend"
    tokenizer: Tokenizer | None = None

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion:
        raise NotImplementedError

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]:
        raise NotImplementedError

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> Completion:
        import asyncio

        return await asyncio.to_thread(self.complete, messages, **options)

    async def astream(self, messages: Sequence[Message], **options: Any) -> AsyncIterator[str | Completion]:
        """:meth:`stream` in a worker thread, one piece at a time.

        Cancelling the consumer (``Chat.astream`` in a task that is cancelled) while a
        piece is being made waits for that piece, then closes the stream in the worker
        thread: a generator cannot be closed while it runs, and a stream left open would
        keep the backend busy until garbage collection.
        """
        import asyncio
        import threading

        iterator = self.stream(messages, **options)
        done = object()
        running = threading.Lock()  # held while the worker thread is inside the generator

        def step() -> Any:
            with running:
                return next(iterator, done)

        def close() -> None:
            with running:
                closer = getattr(iterator, "close", None)
                if closer is not None:
                    closer()

        try:
            while True:
                item = await asyncio.to_thread(step)
                if item is done:
                    return
                yield item
        finally:
            await asyncio.shield(asyncio.to_thread(close))

    def close(self) -> None:
        """Release what the backend holds (nothing, unless a subclass says otherwise)."""

    async def aclose(self) -> None:
        self.close()

    def __enter__(self) -> SyncBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
