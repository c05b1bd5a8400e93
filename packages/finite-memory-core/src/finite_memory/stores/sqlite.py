"""The embedded SQLite store: many sessions in one file, safe for threads and processes.

``Memory(store="sqlite:///chats.db", session="user-42")``. URLs follow SQLAlchemy's form:
``sqlite:///relative/path.db`` and ``sqlite:////absolute/path.db``. Options go in the
query string: ``?max_messages=5000`` (archive cap per session, whole oldest turns go
first), ``?synchronous=normal`` (faster; a power cut may lose the last adds, a crashed
process never does; default ``full``), ``?timeout=30`` (seconds to wait for a busy file).

The file is in WAL mode; each append is one ``BEGIN IMMEDIATE`` transaction, so every
``add`` that returned is on disk. Each thread gets its own connection. The schema
version is kept in ``PRAGMA user_version`` and migrated forward on open; a file written
by a newer version is refused.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

from .._errors import StoreError
from .._message import Message
from .._values import EMPTY, loads_frozen
from ._base import StoreConflict, checked_cap, paused_gc, trusted_message

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
_COLUMNS = "role, content, name, tool_calls, tool_call_id, meta, id, turn"


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """The file path and the query options of a ``sqlite:///...`` URL."""
    if not isinstance(url, str) or not url.startswith("sqlite:///"):
        raise ValueError(f"a SQLite store URL is 'sqlite:///relative.db' or 'sqlite:////absolute/path.db', got {url!r}")
    path, _, query = url[len("sqlite:///") :].partition("?")
    if not path or path == ":memory:":
        raise ValueError(f"a SQLite store needs a file path (use 'memory://' for an in-process store), got {url!r}")
    return path, dict(parse_qsl(query, keep_blank_values=True))


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
        unknown = set(options) - {"max_messages", "synchronous", "timeout"}
        if unknown:
            raise ValueError(
                f"unknown SQLite store options: {', '.join(sorted(unknown))}; "
                "allowed: max_messages, synchronous, timeout"
            )
        self.url = url
        self.path = Path(path)
        self.max_messages = checked_cap(max_messages if max_messages is not None else options.get("max_messages"))
        self.synchronous = (synchronous or options.get("synchronous") or "full").lower()
        if self.synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, got {self.synchronous!r}")
        try:
            self.timeout = float(timeout if timeout is not None else options.get("timeout", 60.0))
        except ValueError:
            raise ValueError(f"timeout must be a number of seconds, got {options.get('timeout')!r}") from None
        if self.timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")
        if not self.path.parent.is_dir():
            raise StoreError(f"cannot open {url!r}: folder {str(self.path.parent)!r} does not exist")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._migrate(self._conn())

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    # -- connections and transactions ---------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise StoreError(f"{self!r} is closed")
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open {self.url!r}: {exc}") from exc
        self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

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
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in one ``BEGIN IMMEDIATE`` transaction (retried while busy)."""
        conn = self._conn()

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

        self._write(migrate)

    # -- the Store interface ---------------------------------------------------------------

    def append(self, session: str, messages: Sequence[Message], *, state: str | None = None) -> None:
        if not messages:
            return
        rows = [_row(session, m) for m in messages]
        kept = sum(1 for m in messages if m.role != "system")
        first, last = messages[0].id, messages[-1].id
        newest_turn = messages[-1].turn or 0

        def work(conn: sqlite3.Connection) -> None:
            found = conn.execute("SELECT next_id, archived FROM sessions WHERE name = ?", (session,)).fetchone()
            expected, archived = found if found else (first, 0)
            if first != expected:
                raise StoreConflict(f"session {session!r}: next id is {expected}, got {first}")
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
        conn = self._conn()
        query = f"SELECT {_COLUMNS} FROM messages WHERE session = ? AND id > ? ORDER BY id"
        rows = self._retry(lambda: conn.execute(query, (session, -1 if after is None else after)).fetchall())
        loads = loads_frozen
        with paused_gc():
            return [
                trusted_message(
                    role,
                    content,
                    name,
                    tuple(loads(calls)) if calls is not None else None,
                    call_id,
                    loads(meta) if meta is not None else EMPTY,
                    id_,
                    turn,
                )
                for role, content, name, calls, call_id, meta, id_, turn in rows
            ]

    def read_state(self, session: str) -> str | None:
        conn = self._conn()
        row = self._retry(lambda: conn.execute("SELECT state FROM sessions WHERE name = ?", (session,)).fetchone())
        return row[0] if row else None

    def sessions(self) -> list[str]:
        conn = self._conn()
        return [
            name for (name,) in self._retry(lambda: conn.execute("SELECT name FROM sessions ORDER BY name").fetchall())
        ]

    def count(self, session: str) -> int:
        conn = self._conn()
        return int(
            self._retry(
                lambda: conn.execute("SELECT COUNT(*) FROM messages WHERE session = ?", (session,)).fetchone()[0]
            )
        )

    def info(self, session: str) -> dict[str, Any] | None:
        """A session's message count, next id and times (``None`` when there is no such session)."""
        conn = self._conn()
        row = self._retry(
            lambda: conn.execute(
                "SELECT next_id, created, updated FROM sessions WHERE name = ?",
                (session,),
            ).fetchone()
        )
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
        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM messages WHERE session = ?", (session,))
            conn.execute("DELETE FROM sessions WHERE name = ?", (session,))

        self._write(work)

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()
        self._local = threading.local()


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
