"""The in-process store: the default, gone when the process ends."""

from __future__ import annotations

from collections.abc import Sequence

from .._message import Message


class InMemoryStore:
    """Sessions kept in a dict of lists; nothing survives the process."""

    def __init__(self, url: str = "memory://") -> None:
        self.url = url
        self._sessions: dict[str, list[Message]] = {}

    def __repr__(self) -> str:
        return f"InMemoryStore(sessions={len(self._sessions)})"

    def append(self, session: str, messages: Sequence[Message]) -> None:
        self._sessions.setdefault(session, []).extend(messages)

    def messages(self, session: str) -> list[Message]:
        return list(self._sessions.get(session, ()))

    def sessions(self) -> list[str]:
        return sorted(self._sessions)

    def delete(self, session: str) -> None:
        self._sessions.pop(session, None)

    def close(self) -> None:
        """Nothing to release."""
