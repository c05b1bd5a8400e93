"""The in-process store: the default, gone when the process ends."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from .._errors import StoreError
from .._message import Message
from ._base import BadStoreURL, StoreConflict, checked_cap, retained_from, session_gone, url_options


class InMemoryStore:
    """Sessions kept in a dict of lists; nothing survives the process.

    ``max_messages`` caps each session's archive (whole oldest turns go first); it can
    be given in the URL too: ``memory://?max_messages=500``.
    """

    def __init__(self, url: str = "memory://", *, max_messages: int | None = None) -> None:
        if not isinstance(url, str) or not url.startswith("memory://") or url[len("memory://") :].partition("?")[0]:
            raise BadStoreURL(f"an in-process store URL is 'memory://' (options after '?'), got {url!r}")
        options = url_options(url.partition("?")[2], ("max_messages",), "in-process")
        self.url = url
        self.max_messages = checked_cap(max_messages if max_messages is not None else options.get("max_messages"))
        self._sessions: dict[str, list[Message]] = {}
        self._next_id: dict[str, int] = {}
        self._states: dict[str, str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InMemoryStore(sessions={len(self._sessions)})"

    def append(
        self, session: str, messages: Sequence[Message], *, state: str | None = None, create: bool = True
    ) -> None:
        if not messages:
            return
        with self._lock:
            if session not in self._next_id and not create:
                raise StoreError(session_gone(session, "the in-process store"))
            expected = self._next_id.get(session, messages[0].id)
            if messages[0].id != expected:
                raise StoreConflict(
                    f"session {session!r}: next id is {expected}, got {messages[0].id}", expected=expected
                )
            archive = self._sessions.setdefault(session, [])
            archive.extend(messages)
            self._next_id[session] = messages[-1].id + 1  # type: ignore[operator]
            if state is not None:
                self._states[session] = state
            if self.max_messages is not None:
                self._trim(archive, self.max_messages)

    @staticmethod
    def _trim(archive: list[Message], cap: int) -> None:
        sizes: dict[int, int] = {}
        for message in archive:
            if message.role != "system":
                turn = message.turn or 0
                sizes[turn] = sizes.get(turn, 0) + 1
        keep_from = retained_from(list(sizes.items()), cap)
        if keep_from is not None:
            archive[:] = [m for m in archive if m.role == "system" or (m.turn or 0) >= keep_from]

    def messages(self, session: str, *, after: int | None = None) -> list[Message]:
        with self._lock:
            archive = self._sessions.get(session, [])
            if after is None:
                return list(archive)
            return [m for m in archive if m.id > after]  # type: ignore[operator]

    def next_id(self, session: str) -> int | None:
        return self._next_id.get(session)

    def forget(self, session: str, ids: Sequence[int], *, state: str) -> int:
        with self._lock:
            if session not in self._next_id:
                raise StoreError(session_gone(session, "the in-process store"))
            gone = set(ids)
            self._sessions[session] = [m for m in self._sessions[session] if m.id not in gone]
            self._states[session] = state
            self._next_id[session] += 1
            return self._next_id[session]

    def read_state(self, session: str) -> str | None:
        return self._states.get(session)

    def sessions(self) -> list[str]:
        return sorted(self._sessions)

    def count(self, session: str) -> int:
        return len(self._sessions.get(session, ()))

    def delete(self, session: str) -> None:
        with self._lock:
            self._sessions.pop(session, None)
            self._next_id.pop(session, None)
            self._states.pop(session, None)

    def close(self) -> None:
        """Nothing to release."""
