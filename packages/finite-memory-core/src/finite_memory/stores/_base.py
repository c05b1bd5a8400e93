"""The store interface: where a memory's archive lives between processes."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol, runtime_checkable

from .._errors import StoreError
from .._message import Message


class StoreConflict(StoreError):
    """An append whose first id is not the session's next id: another writer got there first.

    ``Memory.extend`` handles it by reading what it missed and stamping its batch again.
    """


@runtime_checkable
class Store(Protocol):
    """A durable archive of many sessions' messages.

    A store registers under its URL scheme in the ``finite_memory.stores`` entry-point
    group and is built from the whole URL: ``factory("sqlite:///chats.db")``.

    - ``append`` writes messages (``id`` and ``turn`` already set, ids consecutive) in
      one transaction before it returns. The first id must be the session's next id (the
      last id ever appended + 1; any id starts a new session, so a checkpoint keeps its
      ids); otherwise it writes nothing and raises :class:`StoreConflict`. ``state``, when given, is the policy
      state (JSON text) to keep with the session, written in the same transaction.
      With ``max_messages`` set, it then drops whole oldest turns by
      :func:`retained_from`, in the same transaction.
    - ``messages`` returns a session's archive in id order, only ids ``> after`` when
      ``after`` is given.
    - ``read_state`` returns the last ``state`` appended for the session, or ``None``.
    - ``max_messages`` is the archive cap per session (``None``: no cap); the memory
      drops the same turns from its own view.
    """

    max_messages: int | None

    def append(self, session: str, messages: Sequence[Message], *, state: str | None = None) -> None: ...

    def messages(self, session: str, *, after: int | None = None) -> list[Message]: ...

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
        raise ValueError(f"max_messages must be an int >= 1 or None, got {value!r}")
    return value


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
    _set(message, "role", role)
    _set(message, "content", content)
    _set(message, "name", name)
    _set(message, "tool_calls", tool_calls)
    _set(message, "tool_call_id", tool_call_id)
    _set(message, "meta", meta)
    _set(message, "id", id)
    _set(message, "turn", turn)
    return message


_new = object.__new__
_set = object.__setattr__
