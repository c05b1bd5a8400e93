"""The store interface: where a memory's archive lives between processes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from .._message import Message


@runtime_checkable
class Store(Protocol):
    """A durable archive of many sessions' messages.

    ``append`` writes messages (with their ``id`` and ``turn`` already set) before it
    returns; ``messages`` returns a session's archive in order. A store registers under
    its URL scheme in the ``finite_memory.stores`` entry-point group and is built from
    the whole URL: ``factory("sqlite:///chats.db")``.
    """

    def append(self, session: str, messages: Sequence[Message]) -> None: ...

    def messages(self, session: str) -> list[Message]: ...

    def sessions(self) -> list[str]: ...

    def delete(self, session: str) -> None: ...

    def close(self) -> None: ...
