"""The store interface: where a memory's archive lives between processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, Protocol, runtime_checkable
from urllib.parse import parse_qsl

from .._errors import StoreError
from .._message import ROLES, Message
from .._values import EMPTY, FrozenDict, loads_frozen


class StoreConflict(StoreError):
    """An append whose first id is not the session's next id: another writer got there first.

    ``expected`` is the session's next id when the store knows it. ``Memory.extend``
    handles the conflict by reading what it missed and stamping its batch again.
    """

    def __init__(self, message: str, *, expected: int | None = None) -> None:
        super().__init__(message)
        self.expected = expected


class BadStoreURL(StoreError, ValueError):
    """A store URL that cannot be used: wrong form, unknown or bad option (a ``ValueError`` too)."""


@runtime_checkable
class Store(Protocol):
    """A durable archive of many sessions' messages.

    A store registers under its URL scheme in the ``finite_memory.stores`` entry-point
    group and is built from the whole URL: ``factory("sqlite:///chats.db")``.

    - ``append`` writes messages (``id`` and ``turn`` already set, ids consecutive) in
      one transaction before it returns. The first id must be the session's next id;
      otherwise it writes nothing and raises :class:`StoreConflict` (with ``expected``).
      A session that does not exist accepts any first id (so a checkpoint keeps its
      ids) when ``create`` is true; with ``create=False`` (the memory's view of a session
      that existed) it writes nothing and raises :class:`StoreError`: the session was
      deleted and must not come back silently. ``state``, when given, is the policy
      state (JSON text) to keep with the session, written in the same transaction.
      With ``max_messages`` set, it then drops whole oldest turns by
      :func:`retained_from`, in the same transaction.
    - ``messages`` returns a session's archive in id order, only ids ``> after`` when
      ``after`` is given. Rows it cannot turn back into valid messages (edited by hand,
      say) raise :class:`StoreError` naming the session and id (see :func:`stored_message`).
    - ``next_id`` is the id the session's next append must start with: the last id
      ever appended + 1, or more after a ``forget``; ``None`` when there is no such session.
    - ``forget`` erases the messages with the given ids from the session, replaces its
      state by ``state``, and moves the next id on by one (so every other writer of the
      session conflicts on its next append and rebuilds its view without them), all in
      one transaction; it returns the new next id. A store that keeps copies elsewhere
      (free pages, logs) clears what it can and documents the rest.
    - ``read_state`` returns the last ``state`` appended for the session, or ``None``.
    - ``max_messages`` is the archive cap per session (``None``: no cap); the memory
      drops the same turns from its own view.

    :mod:`finite_memory.stores.contract` checks all of this against a store.
    """

    max_messages: int | None

    def append(
        self, session: str, messages: Sequence[Message], *, state: str | None = None, create: bool = True
    ) -> None: ...

    def messages(self, session: str, *, after: int | None = None) -> list[Message]: ...

    def next_id(self, session: str) -> int | None: ...

    def forget(self, session: str, ids: Sequence[int], *, state: str) -> int: ...

    def read_state(self, session: str) -> str | None: ...

    def sessions(self) -> list[str]: ...

    def count(self, session: str) -> int: ...

    def delete(self, session: str) -> None: ...

    def close(self) -> None: ...


def retained_from(turn_sizes: Sequence[tuple[int, int]], cap: int) -> int | None:
    """The first turn number to keep under a cap of ``cap`` non-system messages.

    ``turn_sizes`` lists ``(turn number, non-system messages)`` oldest first. Whole
    oldest turns go while the rest holds more than ``cap`` messages; the newest turn
    always stays. Returns ``None`` when nothing has to go.
    """
    excess = sum(size for _, size in turn_sizes) - cap
    drop = 0
    while excess > 0 and drop < len(turn_sizes) - 1:
        excess -= turn_sizes[drop][1]
        drop += 1
    return turn_sizes[drop][0] if drop else None


def checked_cap(value: Any) -> int | None:
    """A ``max_messages`` option: ``None`` or an int >= 1."""
    if value is None:
        return None
    if isinstance(value, str):
        value = int(value) if value.isdigit() else value
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadStoreURL(f"max_messages must be an int >= 1 or None, got {value!r}")
    return value


def url_options(query: str, allowed: Sequence[str], store: str) -> dict[str, str]:
    """The options in a store URL's query string; an unknown or repeated one raises :class:`BadStoreURL`."""
    pairs = parse_qsl(query, keep_blank_values=True)
    options = dict(pairs)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise BadStoreURL(f"unknown {store} store options: {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if len(options) != len(pairs):
        raise BadStoreURL(f"a {store} store option is given twice in the URL")
    return options


def session_gone(session: str, store: str) -> str:
    """The error for an append or forget on a session that was deleted while a memory had it open."""
    return f"session {session!r} no longer exists in {store} (deleted by another writer?); reopen it to start anew"


def seconds(value: Any, name: str) -> float:
    """A timeout option: a finite number of seconds > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadStoreURL(f"{name} must be a number of seconds, got {value!r}") from None
    if not 0 < number < float("inf"):
        raise BadStoreURL(f"{name} must be a finite number of seconds > 0, got {value!r}")
    return number


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while a whole archive is rebuilt.

    Replaying 100,000 messages allocates several hundred thousand objects, none of them
    garbage; without the pause the collector walks the growing heap again and again
    (about 40 % of a reopen, measured in ``benchmarks/bench_durability.py``).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stored_message(
    role: Any,
    content: Any,
    name: Any,
    tool_calls: str | None,
    tool_call_id: Any,
    meta: str | None,
    id: Any,
    turn: Any,
    where: str,
) -> Message:
    """A :class:`Message` from a store row (JSON text in ``tool_calls`` and ``meta``).

    Rows as the store writes them take a fast path with only type checks; anything else
    (a row edited by hand or written by another program) is validated in full. A bad row
    raises :class:`StoreError` naming ``where`` (the store and session) and the row's id,
    never a raw decoding error.
    """
    try:
        if (
            tool_calls is None
            and tool_call_id is None
            and role in _PLAIN_ROLES
            and type(content) is str
            and (name is None or type(name) is str)
            and type(id) is int
            and type(turn) is int
        ):
            data = loads_frozen(meta) if meta is not None else EMPTY
            if type(data) is FrozenDict:
                return trusted_message(role, content, name, None, None, data, id, turn)
        return Message(
            role,
            content,
            name=name,
            tool_calls=loads_frozen(tool_calls) if tool_calls is not None else None,
            tool_call_id=tool_call_id,
            meta=loads_frozen(meta) if meta is not None else EMPTY,
            id=_whole(id, "id"),
            turn=_whole(turn, "turn"),
        )
    except (ValueError, TypeError, AttributeError, RecursionError) as exc:
        problem = f"{where}, message {id!r}: not a valid message ({exc}); was the row edited by hand?"
        raise StoreError(problem[:500]) from None


_PLAIN_ROLES = frozenset(ROLES) - {"tool"}


def _whole(value: Any, name: str) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
    return value


def trusted_message(
    role: str,
    content: str,
    name: str | None,
    tool_calls: tuple[dict[str, Any], ...] | None,
    tool_call_id: str | None,
    meta: dict[str, Any],
    id: int,
    turn: int,
) -> Message:
    """A :class:`Message` rebuilt from a row the store wrote itself, without re-validating it.

    Only for data that passed ``Message`` validation when it was added and has not left
    the store since; user input always goes through ``Message(...)``. ``meta`` and the
    ``tool_calls`` dicts must be read-only already (``_values.loads_frozen`` decodes a
    stored JSON column straight into them).
    """
    message = _new(Message)
    _role(message, role)
    _content(message, content)
    _name(message, name)
    _tool_calls(message, tool_calls)
    _tool_call_id(message, tool_call_id)
    _meta(message, meta)
    _id(message, id)
    _turn(message, turn)
    return message


_new = object.__new__
#: The slot setters of the frozen Message, in field order, bound once: a row is rebuilt with
#: eight plain calls (``object.__setattr__`` by name costs half as much again per row). A field
#: added to Message fails this unpacking at import rather than leaving a slot unset.
_role, _content, _name, _tool_calls, _tool_call_id, _meta, _id, _turn = (
    Message.__dict__[field.name].__set__ for field in fields(Message)
)
