"""``Chat``: a backend and a memory, one turn at a time, with rollback on failure.

A turn is prepared (the new messages and the context), sent to the backend, and only
then committed (archived, with the calibration the reply taught): a turn that fails or
is cancelled leaves the memory as it was. A turn is a user message, tool results that
continue the tool loop, or both.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ._backend import Backend, Completion
from ._context import Context
from ._errors import BackendError, ContextLengthError
from ._memory import MIN_BUDGET, Memory
from ._message import Message
from ._registry import load_backend
from ._tokenizer import ApproxTokenizer

#: Finish reasons that say the reply was cut at its length limit (OpenAI, Anthropic, others).
CUT_OFF = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})

#: The share of the budget an uncalibrated estimate may fill: the first turn of a session
#: that never saw a real count (chars/4 can be off by 1.7x for a small-vocabulary model).
FIRST_TURN_SHARE = 0.5

#: Tool schema and response-format costs remembered (one count per distinct set).
_OVERHEAD_CACHE = 32


@dataclass(frozen=True, slots=True)
class Reply:
    """A finished turn: the reply text, the backend's ``usage`` and the turn's ``stats``.

    ``stats`` holds the memory's :class:`~finite_memory.TurnStats` fields, the context's
    ``context_tokens`` and ``budget``, what the backend measured (``prefill_tokens``,
    ``reused_tokens``, ``generated_tokens``, ``cached_prompt_tokens``,
    ``uncached_prompt_tokens``...) and the session's running totals
    (``session_prompt_tokens``, ``session_cached_prompt_tokens``). ``finish_reason`` is
    the backend's (``"stop"``, ``"length"``, ``"tool_calls"``...); a reply cut at its
    length limit is archived with ``meta["finish_reason"]``.
    """

    text: str
    usage: dict[str, int] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    tool_calls: tuple[dict[str, Any], ...] | None = None
    finish_reason: str | None = None

    @property
    def cut_off(self) -> bool:
        """Whether the reply stopped at its length limit rather than where the model ended it."""
        return self.finish_reason in CUT_OFF


@dataclass(frozen=True, slots=True)
class _Turn:
    """A prepared turn: what will be archived, the context to send and the call's options."""

    pending: list[Message]
    continues: bool
    query: str | None
    context: Context
    options: dict[str, Any]
    extra: int
    extra_text: tuple[Message, ...] = ()
    retried: bool = False


def reply_message(completion: Completion, backend: str) -> Message:
    """The assistant message a finished reply is archived as; one cut at its length is marked in ``meta``.

    The gate into the archive: a reply that could not be saved or sent again raises
    :class:`~finite_memory.BackendError` naming ``backend``, and the turn fails.
    """
    meta = {"finish_reason": completion.finish_reason} if completion.finish_reason in CUT_OFF else {}
    try:
        return Message("assistant", completion.text, tool_calls=completion.tool_calls, meta=meta)
    except (TypeError, ValueError) as exc:
        raise BackendError(f"{backend} sent a reply that cannot be archived: {exc}"[:500]) from None


class Chat:
    """A conversation with a model through a finite memory.

    Args:
        backend: a :class:`Backend` or a ``"scheme:model"`` spec for
            :func:`~finite_memory.load_backend`.
        memory: the memory to use; a default :class:`Memory` when omitted.
        **backend_options: options for a backend given as a spec (``base_url``,
            ``api_key``, ``device``...).

    Each turn builds a context for the new messages on a draft of the policy state, calls
    the backend, and only then archives the messages and the reply with that state: a turn
    that fails or is cancelled leaves the memory exactly as it was, its summary and layout
    included. One turn at a time per ``Chat``.

    The tool loop: when a reply has ``tool_calls``, run them and send their results with
    ``chat.send(tool_results={call_id: result, ...})`` (or ``stream``, ``asend``,
    ``astream``); the model answers without a new user message. A turn is refused with a
    ``ValueError`` naming the unanswered ``tool_call_id``\\ s while any call of the last
    reply has no result.
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
        self.last_context: Context | None = None  # what the model saw in the last finished turn
        self.totals = {"turns": 0, "prompt_tokens": 0, "cached_prompt_tokens": 0}
        self._budget_cap: int | None = None
        self._overheads: OrderedDict[tuple[str, object], int] = OrderedDict()

    def __repr__(self) -> str:
        return f"Chat(backend={self.backend.name!r}, memory={self.memory!r})"

    # -- preparing a turn ---------------------------------------------------------------

    def _prepare(self, text: str | None, tool_results: Any, options: dict[str, Any]) -> _Turn:
        pending, continues = self._pending(text, tool_results)
        options = self._generation_options(options)
        extra, extra_text = self._request_tokens(options)
        query = text if text is not None else self._turn_question()
        context = self.memory._build(query, pending, budget=self._turn_budget(extra), continues=continues)
        return _Turn(pending, continues, query, context, self._with_hints(options, context), extra, extra_text)

    def _pending(self, text: str | None, tool_results: Any) -> tuple[list[Message], bool]:
        """The messages this turn archives, and whether they continue the newest turn."""
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        results = _tool_messages(tool_results)
        unanswered = self._unanswered_calls()
        given = [m.tool_call_id for m in results]
        unknown = sorted({str(i) for i in given} - unanswered)
        if unknown or len(set(given)) != len(given):
            raise ValueError(
                f"tool results for {', '.join(unknown) or 'the same call twice'} answer no open tool call "
                f"(open: {', '.join(sorted(unanswered)) or 'none'})"
            )
        missing = sorted(unanswered - set(given))
        if missing and (results or text is not None):
            raise ValueError(
                f"the last reply's tool calls {', '.join(missing)} have no result; send every result with "
                "tool_results={call_id: result} before the conversation goes on"
            )
        if text is None and not results:
            last = self.memory._messages[-1] if self.memory._messages else None
            if last is None or last.role != "tool":
                raise ValueError("a turn needs text, tool_results, or tool results already added to the memory")
            return [], True
        user = [Message("user", text)] if text is not None else []
        return [*results, *user], bool(results) or text is None

    def _unanswered_calls(self) -> set[str]:
        turns = self.memory._turns
        if not turns:
            return set()
        answered = {m.tool_call_id for m in turns[-1].messages if m.role == "tool"}
        return {c for c in turns[-1].open_tool_calls() if c not in answered}

    def _turn_question(self) -> str | None:
        turns = self.memory._turns
        return next((m.content for m in reversed(turns[-1].messages) if m.role == "user"), None) if turns else None

    def _generation_options(self, options: dict[str, Any]) -> dict[str, Any]:
        max_new = options.pop("max_new_tokens", None)
        temperature = options.pop("temperature", None)
        if max_new is None and self.memory.reserve_output > 0:
            max_new = self.memory.reserve_output
        if max_new is not None and (not isinstance(max_new, int) or isinstance(max_new, bool) or max_new <= 0):
            raise ValueError(f"max_new_tokens must be a positive int, got {max_new!r}")
        if temperature is not None and (
            not isinstance(temperature, (int, float))
            or isinstance(temperature, bool)
            or not math.isfinite(temperature)
            or temperature < 0
        ):
            raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy), got {temperature!r}")
        if max_new is not None:
            options["max_new_tokens"] = max_new
        if temperature is not None:
            options["temperature"] = float(temperature)
        return options

    def _request_tokens(self, options: dict[str, Any]) -> tuple[int, tuple[Message, ...]]:
        """Tokens the request's tool schemas and ``response_format`` add, counted once per distinct set.

        Also the same text as messages, for an estimating tokenizer to calibrate on: the
        server counts the schemas in its ``prompt_tokens``, and a fit that did not see
        them would read them as conversation (ten tools once drove the scale to its cap).
        """
        parts = [_json(options[k]) for k in ("tools", "response_format") if options.get(k) is not None]
        if not parts:
            return 0, ()
        texts = tuple(Message("system", part) for part in parts)
        tokenizer = self.memory.tokenizer
        key = ("\n".join(parts), self.memory._counter.key)
        cost = self._overheads.get(key)
        if cost is None:
            count_tools = getattr(tokenizer, "count_tools", None)
            if count_tools is not None and options.get("tools") is not None:  # the template renders them exactly
                cost = int(count_tools(options["tools"])) + sum(self.memory._counter.message(m) for m in texts[1:])
            else:
                cost = sum(self.memory._counter.message(m) for m in texts)
            self._overheads[key] = cost
            if len(self._overheads) > _OVERHEAD_CACHE:
                self._overheads.popitem(last=False)
        else:
            self._overheads.move_to_end(key)
        return cost, texts

    def _turn_budget(self, extra: int) -> int:
        """The context's budget this turn: the memory's, less the request's extras and what was learned."""
        budget = self.memory.budget
        if self._budget_cap is not None:
            budget = min(budget, self._budget_cap)
        tokenizer = self.memory.tokenizer
        if type(tokenizer) is ApproxTokenizer and not tokenizer.samples:
            budget = int(budget * FIRST_TURN_SHARE)  # no real count seen yet: leave room for its error
        if budget - extra < MIN_BUDGET:
            raise ValueError(
                f"the tool schemas and response_format take {extra} tokens, leaving less than {MIN_BUDGET} "
                f"of the {budget}-token budget for the conversation"
            )
        return budget - extra

    def _with_hints(self, options: dict[str, Any], context: Context) -> dict[str, Any]:
        """The call options, with the cache hints a backend that takes them can use."""
        if getattr(self.backend, "accepts_cache_hints", False):
            return {**options, "stable_prefix": context.stable_prefix, "session": self.memory.session}
        return options

    def _shrink(self, turn: _Turn, error: ContextLengthError) -> _Turn:
        """The turn rebuilt under what a context-length error said, or the error when it cannot be."""
        if turn.retried:
            raise error
        context = turn.context
        calibrate = getattr(self.memory.tokenizer, "calibrate", None)
        server = error.prompt_tokens
        ratio = 1.0
        if server and server > turn.extra:
            if calibrate is not None:
                calibrate([*context.messages, *turn.extra_text], server)  # the server's count is a real observation
            else:
                ratio = (context.tokens + turn.extra) / server  # an exact tokenizer that disagrees with the server
        if error.limit:
            max_new = turn.options.get("max_new_tokens") or 0
            budget = int((error.limit - max_new) * ratio * 0.95) - turn.extra
        else:
            budget = int(context.budget * 0.75)
        budget = min(budget, int(context.tokens * 0.95))
        if budget < MIN_BUDGET:
            raise error
        self._budget_cap = budget + turn.extra
        rebuilt = self.memory._build(turn.query, turn.pending, budget=budget, continues=turn.continues)
        return replace(turn, context=rebuilt, options=self._with_hints(turn.options, rebuilt), retried=True)

    # -- committing a turn --------------------------------------------------------------

    def _commit(self, turn: _Turn, completion: Completion) -> Reply:
        reply = reply_message(completion, self.backend.name)
        prompt_tokens = completion.usage.get("prompt_tokens")
        calibrate = getattr(self.memory.tokenizer, "calibrate", None)
        if calibrate is not None and isinstance(prompt_tokens, int) and prompt_tokens > 0:
            calibrate([*turn.context.messages, *turn.extra_text], prompt_tokens)  # before extend: stored with the turn
        self.memory.extend([*turn.pending, reply], context=turn.context)  # commits the draft built for it
        context = self.last_context = turn.context
        stats = {
            **context.stats.as_dict(),
            "context_tokens": context.tokens,
            "budget": context.budget,
            "request_tokens": turn.extra,
            "context_retries": int(turn.retried),
            **completion.stats,
        }
        stats.update(self._count_session(completion))
        self.last_reply = Reply(
            text=completion.text,
            usage=dict(completion.usage),
            stats=stats,
            tool_calls=completion.tool_calls,
            finish_reason=completion.finish_reason,
        )
        return self.last_reply

    def _count_session(self, completion: Completion) -> dict[str, Any]:
        """The session's running totals of prompt tokens, cached and not, with this turn's added."""
        totals = self.totals
        totals["turns"] += 1
        prompt = completion.usage.get("prompt_tokens")
        if isinstance(prompt, int):
            cached = completion.stats.get("cached_prompt_tokens", completion.stats.get("reused_tokens", 0))
            totals["prompt_tokens"] += prompt
            totals["cached_prompt_tokens"] += cached if isinstance(cached, int) else 0
        prompt_total, cached_total = totals["prompt_tokens"], totals["cached_prompt_tokens"]
        return {
            "session_prompt_tokens": prompt_total,
            "session_cached_prompt_tokens": cached_total,
            "session_uncached_prompt_tokens": prompt_total - cached_total,
            "session_cache_rate": cached_total / prompt_total if prompt_total else 0.0,
        }

    # -- the four ways to run a turn ----------------------------------------------------

    def send(self, text: str | None = None, *, tool_results: Any = None, **options: Any) -> Reply:
        """Send a user message (or tool results, or both) and return the reply.

        ``tool_results``: the results of the last reply's tool calls, as
        ``{tool_call_id: content}`` or a list of ``tool`` :class:`Message` s; the model then
        answers without a new user message. ``options``: ``max_new_tokens`` (defaults to
        the memory's ``reserve_output``), ``temperature`` (0 = greedy), and any
        backend-specific option (``tools``, ``response_format``...). A context-length error
        from the server shrinks the context and retries once.
        """
        turn = self._prepare(text, tool_results, options)
        try:
            completion = self.backend.complete(turn.context.messages, **turn.options)
        except ContextLengthError as exc:
            error = exc
        else:
            return self._commit(turn, completion)
        turn = self._shrink(turn, error)
        return self._commit(turn, self.backend.complete(turn.context.messages, **turn.options))

    def stream(self, text: str | None = None, *, tool_results: Any = None, **options: Any) -> Iterator[str]:
        """:meth:`send`, yielding the reply's text pieces as they come.

        The turn is archived when the stream finishes; the :class:`Reply` is then in
        ``last_reply``. Closing the iterator early cancels the turn.
        """
        turn = self._prepare(text, tool_results, options)
        completion = None
        for attempt in (0, 1):
            started = False
            pieces = self.backend.stream(turn.context.messages, **turn.options)
            try:
                for item in pieces:
                    if isinstance(item, Completion):
                        completion = item
                    else:
                        started = True
                        yield item
            except ContextLengthError as exc:
                if started or attempt:
                    raise
                error = exc
            else:
                break
            finally:
                close = getattr(pieces, "close", None)
                if close is not None:
                    close()
            turn = self._shrink(turn, error)
        if completion is None:
            raise BackendError(f"{self.backend.name} ended its stream without a finished reply")
        self._commit(turn, completion)

    async def asend(self, text: str | None = None, *, tool_results: Any = None, **options: Any) -> Reply:
        """:meth:`send`, without blocking the event loop."""
        turn = self._prepare(text, tool_results, options)
        try:
            completion = await self.backend.acomplete(turn.context.messages, **turn.options)
        except ContextLengthError as exc:
            error = exc
        else:
            return self._commit(turn, completion)
        turn = self._shrink(turn, error)
        return self._commit(turn, await self.backend.acomplete(turn.context.messages, **turn.options))

    async def astream(self, text: str | None = None, *, tool_results: Any = None, **options: Any) -> AsyncIterator[str]:
        """:meth:`stream`, without blocking the event loop."""
        turn = self._prepare(text, tool_results, options)
        completion = None
        for attempt in (0, 1):
            started = False
            pieces = self.backend.astream(turn.context.messages, **turn.options)
            try:
                async for item in pieces:
                    if isinstance(item, Completion):
                        completion = item
                    else:
                        started = True
                        yield item
            except ContextLengthError as exc:
                if started or attempt:
                    raise
                error = exc
            else:
                break
            finally:
                aclose = getattr(pieces, "aclose", None)
                if aclose is not None:
                    await aclose()
            turn = self._shrink(turn, error)
        if completion is None:
            raise BackendError(f"{self.backend.name} ended its stream without a finished reply")
        self._commit(turn, completion)

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


def _tool_messages(results: Any) -> list[Message]:
    """Tool results as ``tool`` messages: from ``{call_id: content}`` or a list of messages."""
    if results is None:
        return []
    if isinstance(results, Mapping):
        messages = []
        for call_id, content in results.items():
            if not isinstance(content, str):
                raise TypeError(f"the result of tool call {call_id!r} must be a str, not {type(content).__name__}")
            messages.append(Message("tool", content, tool_call_id=call_id))
        return messages
    if isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        for message in results:
            if not isinstance(message, Message) or message.role != "tool":
                raise TypeError("tool_results must be {tool_call_id: content} or a list of tool Messages")
        return list(results)
    raise TypeError(f"tool_results must be {{tool_call_id: content}} or a list of tool Messages, not {results!r}")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)
