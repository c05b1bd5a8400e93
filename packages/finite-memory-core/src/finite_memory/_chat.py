"""``Chat``: a backend and a memory, one turn at a time, with rollback on failure."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from ._backend import Backend, Completion
from ._context import Context
from ._errors import BackendError
from ._memory import Memory
from ._message import Message
from ._registry import load_backend


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished turn: the reply text, the backend's ``usage`` and the turn's ``stats``.

    ``stats`` holds the memory's :class:`~finite_memory.TurnStats` fields, the context's
    ``context_tokens``, and what the backend measured (``prefill_tokens``,
    ``reused_tokens``, ``generated_tokens``...).
    """

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    tool_calls: tuple[dict[str, Any], ...] | None = None


class Chat:
    """A conversation with a model through a finite memory.

    Args:
        backend: a :class:`Backend` or a ``"scheme:model"`` spec for
            :func:`~finite_memory.load_backend`.
        memory: the memory to use; a default :class:`Memory` when omitted.
        **backend_options: options for a backend given as a spec (``base_url``,
            ``api_key``, ``device``...).

    Each turn builds a context for the new user message on a draft of the policy state,
    calls the backend, and only then archives the message and the reply with that state:
    a turn that fails or is cancelled leaves the memory exactly as it was, its summary and
    layout included. One turn at a time per ``Chat``.
    """

    def __init__(self, backend: Backend | str, memory: Memory | None = None, **backend_options: Any) -> None:
        if isinstance(backend, str):
            backend = load_backend(backend, **backend_options)
        elif backend_options:
            raise TypeError("backend options go with a backend spec string, not with a built backend")
        if not isinstance(backend, Backend):
            raise TypeError(f"backend must be a Backend or a 'scheme:model' string, not {type(backend).__name__}")
        if memory is not None and not isinstance(memory, Memory):
            raise TypeError(f"memory must be a Memory, not {type(memory).__name__}")
        self.backend = backend
        self.memory = memory if memory is not None else Memory()
        if backend.tokenizer is not None:
            self.memory.use_tokenizer(backend.tokenizer)
        self.last_reply: Reply | None = None

    def __repr__(self) -> str:
        return f"Chat(backend={self.backend.name!r}, memory={self.memory!r})"

    # -- one turn ------------------------------------------------------------------------

    def _prepare(self, text: str, options: dict[str, Any]) -> tuple[Message, Context, dict[str, Any]]:
        user = Message("user", text)
        context = self.memory._build(text, [user])
        return user, context, self._generation_options(options)

    def _generation_options(self, options: dict[str, Any]) -> dict[str, Any]:
        max_new = options.pop("max_new_tokens", None)
        temperature = options.pop("temperature", None)
        if max_new is None and self.memory.reserve_output > 0:
            max_new = self.memory.reserve_output
        if max_new is not None and (not isinstance(max_new, int) or isinstance(max_new, bool) or max_new <= 0):
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new!r}")
        if temperature is not None and (not isinstance(temperature, (int, float)) or temperature < 0):
            raise ValueError(f"temperature must be a number >= 0 (0 = greedy), got {temperature!r}")
        if max_new is not None:
            options["max_new_tokens"] = max_new
        if temperature is not None:
            options["temperature"] = float(temperature)
        return options

    def _commit(self, user: Message, context: Context, completion: Completion) -> Reply:
        reply = Message("assistant", completion.text, tool_calls=completion.tool_calls)
        self.memory.extend([user, reply], context=context)  # commits the policy state computed for this context
        prompt_tokens = completion.usage.get("prompt_tokens")
        calibrate = getattr(self.memory.tokenizer, "calibrate", None)
        if calibrate is not None and isinstance(prompt_tokens, int) and prompt_tokens > 0:
            calibrate(context.messages, prompt_tokens)
        stats = {**context.stats.as_dict(), "context_tokens": context.tokens, **completion.stats}
        self.last_reply = Reply(
            text=completion.text, usage=dict(completion.usage), stats=stats, tool_calls=completion.tool_calls
        )
        return self.last_reply

    def send(self, text: str, **options: Any) -> Reply:
        """Send a user message and return the reply.

        ``options``: ``max_new_tokens`` (defaults to the memory's ``reserve_output``),
        ``temperature`` (0 = greedy), and any backend-specific option.
        """
        user, context, options = self._prepare(text, options)
        completion = self.backend.complete(context.messages, **options)
        return self._commit(user, context, completion)

    def stream(self, text: str, **options: Any) -> Iterator[str]:
        """Send a user message and yield the reply's text pieces as they come.

        The turn is archived when the stream finishes; the :class:`Reply` is then in
        ``last_reply``. Closing the iterator early cancels the turn.
        """
        user, context, options = self._prepare(text, options)
        completion = None
        pieces = self.backend.stream(context.messages, **options)
        try:
            for item in pieces:
                if isinstance(item, Completion):
                    completion = item
                else:
                    yield item
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
        if completion is None:
            raise BackendError(f"{self.backend.name} ended its stream without a finished reply")
        self._commit(user, context, completion)

    async def asend(self, text: str, **options: Any) -> Reply:
        """:meth:`send`, without blocking the event loop."""
        user, context, options = self._prepare(text, options)
        completion = await self.backend.acomplete(context.messages, **options)
        return self._commit(user, context, completion)

    async def astream(self, text: str, **options: Any) -> AsyncIterator[str]:
        """:meth:`stream`, without blocking the event loop."""
        user, context, options = self._prepare(text, options)
        completion = None
        pieces = self.backend.astream(context.messages, **options)
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
            raise BackendError(f"{self.backend.name} ended its stream without a finished reply")
        self._commit(user, context, completion)

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the backend's connections (the memory stays usable)."""
        self.backend.close()

    async def aclose(self) -> None:
        await self.backend.aclose()

    def __enter__(self) -> Chat:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Chat:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
