"""The embedded SQLite store: many sessions in one file, safe for threads and processes.

``Memory(store="sqlite:///chats.db", session="user-42")``. URLs follow SQLAlchemy's form:
``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``. Options go in the
query string: ``?max_messages=5000`` (archive cap per session, whole oldest turns go
first), ``?synchronous=normal`` (faster; a power cut may lose the last adds, a crashed
process never does; default ``full``), ``?timeout=30`` (seconds to wait for a busy file).

The file is in WAL mode; each append is one ``BEGIN IMMEDIATE`` transaction, so every
``add`` that returned is on disk. Threads borrow connections from a small pool (at most
``MAX_IDLE`` stay open), so short-lived threads leave no file descriptors behind.
``secure_delete`` is on: erased and trimmed rows are overwritten with zeros, and after
``forget`` or ``delete`` the write-ahead log is checkpointed and truncated, so the text
is left neither in free pages nor in the log. The schema version is kept in
``PRAGMA user_version`` and migrated forward on open; a file written by a newer version
is refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .._errors import StoreError
from .._message import Message
from ._base import (
    BadStoreURL,
    StoreConflict,
    checked_cap,
    paused_gc,
    seconds,
    session_gone,
    stored_message,
    url_options,
)

T = TypeVar("T")

#: The schema this code writes; ``MIGRATIONS[v]`` brings a file from version ``v`` to ``v + 1``.
SCHEMA_VERSION = 1

_SCHEMA_V1 = """
CREATE TABLE sessions (
    name TEXT PRIMARY KEY,
    next_id INTEGER NOT NULL,
    archived INTEGER NOT NULL,
    state TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE messages (
    session TEXT NOT NULL,
    id INTEGER NOT NULL,
    turn INTEGER NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    name TEXT,
    tool_calls TEXT,
    tool_call_id TEXT,
    meta TEXT,
    PRIMARY KEY (session, id)
) WITHOUT ROWID;
"""


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1.split(";"):
        if statement.strip():
            conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_create_v1]

_SYNCHRONOUS = ("full", "normal", "extra", "off")
_OPTIONS = ("max_messages", "synchronous", "timeout")
_COLUMNS = "role, content, name, tool_calls, tool_call_id, meta, id, turn"

#: Idle connections kept for reuse; more are opened under contention and closed when returned.
MAX_IDLE = 4

#: Ids per ``IN (...)`` list when erasing (SQLite allows 999 parameters in old builds).
_CHUNK = 500


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """The file path and the query options of a ``sqlite:///...`` URL."""
    if not isinstance(url, str) or not url.startswith("sqlite:///"):
        raise BadStoreURL(
            f"a SQLite store URL is 'sqlite:///relative.db' or 'sqlite:////absolute/path.db', got {url!r}"
        )
    path, _, query = url[len("sqlite:///") :].partition("?")
    if not path or path == ":memory:":
        raise BadStoreURL(f"a SQLite store needs a file path (use 'memory://' for an in-process store), got {url!r}")
    return path, url_options(query, _OPTIONS, "SQLite")


class SQLiteStore:
    """Sessions in one SQLite file (see the module docstring for the URL and its options).

    Args:
        url: ``sqlite:///path.db`` with optional query options.
        max_messages, synchronous, timeout: the same options as keywords (they win over the URL's).
    """

    def __init__(
        self,
        url: str,
        *,
        max_messages: int | None = None,
        synchronous: str | None = None,
        timeout: float | None = None,
    ) -> None:
        path, options = parse_url(url)
        self.url = url
        self.path = Path(path)
        self.max_messages = checked_cap(max_messages if max_messages is not None else options.get("max_messages"))
        self.synchronous = (synchronous or options.get("synchronous") or "full").lower()
        if self.synchronous not in _SYNCHRONOUS:
            raise BadStoreURL(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {self.synchronous!r}")
        self.timeout = seconds(timeout if timeout is not None else options.get("timeout", 60.0), "timeout")
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open {url!r}: folder {str(self.path.parent)!r} does not exist")
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        with self._connection() as conn:
            self._migrate(conn)

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    # -- connections and transactions ---------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation: an idle one, or a new one; returned to the pool after."""
        with self._lock:
            if self._closed:
                raise StoreError(f"{self!r} is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._open()
        try:
            yield conn
        finally:
            with self._lock:
                keep = not self._closed and len(self._idle) < MAX_IDLE and not conn.in_transaction
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.url!r}: {exc}") from exc
        try:
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA secure_delete=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on a pooled connection, retrying while the file is busy."""
        with self._connection() as conn:
            return self._retry(lambda: work(conn))

    def _retry(self, work: Callable[[], T]) -> T:
        """Run ``work``, retrying while the file is busy, for up to ``timeout`` seconds."""
        deadline = time.monotonic() + self.timeout
        delay = 0.001
        while True:
            try:
                return work()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise StoreError(f"{self.url}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{self.url}: {exc}") from exc
            except UnicodeEncodeError as exc:
                raise StoreError(f"{self.url}: text that cannot be stored as UTF-8 ({exc.reason})") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction (retried while busy)."""
        with self._connection() as conn:
            return self._transaction(conn, work)

    def _transaction(self, conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
        def attempt() -> T:
            try:
                conn.execute("BEGIN IMMEDIATE")
                result = work(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        return self._retry(attempt)

    def _erase_log(self, conn: sqlite3.Connection) -> None:
        """Copy the log into the file and truncate it, so erased text is left in neither.

        Waits (up to ``timeout``) for readers of other connections to finish; a reader
        that stays longer leaves the log to the next checkpoint.
        """
        deadline = time.monotonic() + self.timeout
        while self._retry(lambda: conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())[0]:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)

    def _migrate(self, conn: sqlite3.Connection) -> None:
        def read_version() -> int:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])

        if self._retry(read_version) == SCHEMA_VERSION:
            return

        def migrate(conn: sqlite3.Connection) -> None:
            version = read_version()  # again, inside the lock: another process may have migrated
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.url} has schema version {version}, newer than this finite-memory supports "
                    f"({SCHEMA_VERSION}); upgrade finite-memory-core"
                )
            for step in range(version, SCHEMA_VERSION):
                MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        self._transaction(conn, migrate)

    # -- the Store interface ---------------------------------------------------------------

    def append(
        self, session: str, messages: Sequence[Message], *, state: str | None = None, create: bool = True
    ) -> None:
        if not messages:
            return
        rows = [_row(session, m) for m in messages]
        kept = sum(1 for m in messages if m.role != "system")
        first, last = messages[0].id, messages[-1].id
        newest_turn = messages[-1].turn or 0

        def work(conn: sqlite3.Connection) -> None:
            found = conn.execute("SELECT next_id, archived FROM sessions WHERE name = ?", (session,)).fetchone()
            if found is None and not create:
                raise StoreError(session_gone(session, self.url))
            expected, archived = found if found else (first, 0)
            if first != expected:
                raise StoreConflict(f"session {session!r}: next id is {expected}, got {first}", expected=expected)
            now = time.time()
            if found is None:
                conn.execute(
                    "INSERT INTO sessions (name, next_id, archived, state, created, updated) "
                    "VALUES (?, 0, 0, NULL, ?, ?)",
                    (session, now, now),
                )
            conn.executemany(
                f"INSERT INTO messages (session, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            archived += kept
            if self.max_messages is not None and archived > self.max_messages:
                archived -= _trim(conn, session, archived - self.max_messages, newest_turn)
            conn.execute(
                "UPDATE sessions SET next_id = ?, archived = ?, updated = ?, state = COALESCE(?, state) WHERE name = ?",
                (last + 1, archived, now, state, session),  # type: ignore[operator]
            )

        self._write(work)

    def messages(self, session: str, *, after: int | None = None) -> list[Message]:
        query = f"SELECT {_COLUMNS} FROM messages WHERE session = ? AND id > ? ORDER BY id"
        rows = self._read(lambda conn: conn.execute(query, (session, -1 if after is None else after)).fetchall())
        where = f"{self.url}: session {session!r}"
        with paused_gc():
            return [
                stored_message(role, content, name, calls, call_id, meta, id_, turn, where)
                for role, content, name, calls, call_id, meta, id_, turn in rows
            ]

    def next_id(self, session: str) -> int | None:
        query = "SELECT next_id FROM sessions WHERE name = ?"
        row = self._read(lambda conn: conn.execute(query, (session,)).fetchone())
        return int(row[0]) if row else None

    def forget(self, session: str, ids: Sequence[int], *, state: str) -> int:
        """Erase messages by id (zeroed on disk, log truncated); see :class:`~finite_memory.stores.Store`."""
        wanted = sorted(set(ids))

        def work(conn: sqlite3.Connection) -> int:
            found = conn.execute("SELECT next_id FROM sessions WHERE name = ?", (session,)).fetchone()
            if found is None:
                raise StoreError(session_gone(session, self.url))
            erased = 0
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ", ".join("?" * len(chunk))
                erased += conn.execute(
                    f"SELECT COUNT(*) FROM messages WHERE session = ? AND role != 'system' AND id IN ({marks})",
                    (session, *chunk),
                ).fetchone()[0]
                conn.execute(f"DELETE FROM messages WHERE session = ? AND id IN ({marks})", (session, *chunk))
            conn.execute(
                "UPDATE sessions SET next_id = next_id + 1, archived = archived - ?, state = ?, updated = ? "
                "WHERE name = ?",
                (erased, state, time.time(), session),
            )
            return int(found[0]) + 1

        with self._connection() as conn:
            next_id = self._transaction(conn, work)
            self._erase_log(conn)
        return next_id

    def read_state(self, session: str) -> str | None:
        row = self._read(lambda conn: conn.execute("SELECT state FROM sessions WHERE name = ?", (session,)).fetchone())
        return row[0] if row else None

    def sessions(self) -> list[str]:
        rows = self._read(lambda conn: conn.execute("SELECT name FROM sessions ORDER BY name").fetchall())
        return [name for (name,) in rows]

    def count(self, session: str) -> int:
        query = "SELECT COUNT(*) FROM messages WHERE session = ?"
        return int(self._read(lambda conn: conn.execute(query, (session,)).fetchone()[0]))

    def info(self, session: str) -> dict[str, Any] | None:
        """A session's message count, next id and times (``None`` when there is no such session)."""
        query = "SELECT next_id, created, updated FROM sessions WHERE name = ?"
        row = self._read(lambda conn: conn.execute(query, (session,)).fetchone())
        if row is None:
            return None
        return {
            "session": session,
            "messages": self.count(session),
            "next_id": row[0],
            "created": row[1],
            "updated": row[2],
        }

    def delete(self, session: str) -> None:
        """Delete a session and its messages (zeroed on disk, log truncated)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE session = ?", (session,))
            conn.execute("DELETE FROM sessions WHERE name = ?", (session,))

        with self._connection() as conn:
            self._transaction(conn, work)
            self._erase_log(conn)

    def close(self) -> None:
        """Close the pooled connections; the store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _row(session: str, m: Message) -> tuple[Any, ...]:
    calls = json.dumps(list(m.tool_calls), ensure_ascii=False) if m.tool_calls is not None else None
    meta = json.dumps(m.meta, ensure_ascii=False) if m.meta else None
    return (
        session,
        m.role,
        m.content,
        m.name,
        calls,
        m.tool_call_id,
        meta,
        m.id,
        m.turn,
    )


def _trim(conn: sqlite3.Connection, session: str, excess: int, newest_turn: int) -> int:
    """Delete whole oldest turns (never ``newest_turn``) until ``excess`` messages went; returns how many."""
    removed = 0
    pending = 0
    current: int | None = None
    cut: int | None = None
    rows = conn.execute(
        "SELECT turn FROM messages WHERE session = ? AND role != 'system' ORDER BY id",
        (session,),
    )
    for (turn,) in rows:
        if turn != current:
            if current is not None:
                removed += pending
                cut = current
                if removed >= excess:
                    break
            if turn == newest_turn:
                break
            current, pending = turn, 0
        pending += 1
    rows.close()
    if cut is None:
        return 0
    conn.execute(
        "DELETE FROM messages WHERE session = ? AND role != 'system' AND turn <= ?",
        (session, cut),
    )
    return removed


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    name = getattr(exc, "sqlite_errorname", "")
    text = str(exc).lower()
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text
