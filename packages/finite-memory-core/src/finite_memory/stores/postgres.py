"""The PostgreSQL store: one archive that every host of a deployment shares.

``Memory(store="postgresql://app@db.internal:5432/chats", session="user-42")``, with
``pip install "finite-memory-core[postgres]"`` (psycopg 3). ``postgres://``
works too. The password comes from the URL, ``PGPASSWORD`` or ``~/.pgpass``; it never
appears in a repr, a log line or an error. Options in the query string:

- ``max_messages=N``: archive cap per session (whole oldest turns go, in the same transaction).
- ``pool_size=5``: most connections this store holds at once (opened on demand, reused,
  closed after ``MAX_IDLE_S`` idle).
- ``schema=NAME``: the schema for the tables (created when missing; default: the search path's first).
- ``table_prefix=fm_``: the tables are ``<prefix>sessions``, ``<prefix>messages``, ``<prefix>meta``.
- ``timeout=30``: seconds an operation waits for a connection, and keeps retrying
  through a server restart or failover, before it raises :class:`StoreError`.
- ``statement_timeout=N``: seconds a statement may run on the server (default: no limit).
- ``prepare_threshold=5``: psycopg prepares a statement on the server after this many
  runs; ``none`` never does (for PgBouncer in transaction mode before 1.21).
- anything else goes to libpq: ``sslmode``, ``connect_timeout`` (default 10),
  ``application_name``, ``target_session_attrs``...

Connections are pooled by this module rather than ``psycopg_pool``, whose reconnection
backs off from 1 s doubling: after a restart its adds waited 2.4-3 s more for a server that
was already back. Here the next attempt connects at once. Every append is one statement
(one round trip; a transaction with the trim when ``max_messages`` is set) that checks the
session's next id and inserts the rows together, so writers of one session are serialised
by its row lock and other sessions go in parallel. An append whose connection broke is
retried on a fresh one; if its commit had in fact landed, the retry finds its own rows and
returns, so an ``add`` either raised or is stored exactly once. The schema version is in
``<prefix>meta`` and migrated forward on open under an advisory lock; a newer one is refused.

Erasure: ``forget`` and ``delete`` remove rows at once for every reader, but PostgreSQL
keeps dead row versions in the table's pages until ``VACUUM`` reclaims them (and even
then the bytes may stay until the page is rewritten), and in its write-ahead log,
replicas and backups until those expire. ``VACUUM (FULL) <prefix>messages`` rewrites the
table into new files; see ``docs/stores.md``.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from .._errors import StoreError
from .._message import Message
from ._base import (
    BadStoreURL,
    StoreConflict,
    checked_cap,
    paused_gc,
    retained_from,
    seconds,
    session_gone,
    stored_message,
)

try:
    import psycopg
    from psycopg import sql
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        f"the PostgreSQL store needs psycopg 3 ({exc}); install it with: pip install 'finite-memory-core[postgres]'"
    ) from None

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: The schema this code writes; ``MIGRATIONS[v]`` brings the tables from version ``v`` to ``v + 1``.
SCHEMA_VERSION = 1

_OWN_OPTIONS = (
    "max_messages",
    "pool_size",
    "schema",
    "table_prefix",
    "timeout",
    "statement_timeout",
    "prepare_threshold",
)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PREFIX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|")
_COLUMNS = "role, content, name, tool_calls, tool_call_id, meta, id, turn, escaped"
#: Seconds a pooled connection may sit idle before it is closed rather than reused.
MAX_IDLE_S = 600.0

#: SQLSTATEs worth trying again on a fresh connection: lost connections, a server shutting
#: down or starting up, serialisation failures and deadlocks.
_RETRY_STATES = ("08", "57P01", "57P02", "57P03", "40001", "40P01")


def _create_v1(cur: psycopg.Cursor[Any], t: dict[str, sql.Composable]) -> None:
    cur.execute(
        sql.SQL(
            "CREATE TABLE {sessions} ("
            " name TEXT PRIMARY KEY,"
            " next_id BIGINT NOT NULL,"
            " archived BIGINT NOT NULL,"
            " state TEXT,"
            " created TIMESTAMPTZ NOT NULL DEFAULT now(),"
            " updated TIMESTAMPTZ NOT NULL DEFAULT now())"
        ).format(**t)
    )
    # tool_calls and meta hold JSON text (cast to jsonb to query them): jsonb would reorder
    # keys and refuses \u0000. ``escaped`` marks a row whose content, name and tool_call_id
    # are JSON-encoded because they hold NUL, which PostgreSQL text cannot.
    cur.execute(
        sql.SQL(
            "CREATE TABLE {messages} ("
            " session TEXT NOT NULL,"
            " id BIGINT NOT NULL,"
            " turn BIGINT NOT NULL,"
            " role TEXT NOT NULL,"
            " content TEXT NOT NULL,"
            " name TEXT,"
            " tool_calls TEXT,"
            " tool_call_id TEXT,"
            " meta TEXT,"
            " escaped BOOLEAN NOT NULL DEFAULT FALSE,"
            " PRIMARY KEY (session, id))"
        ).format(**t)
    )


MIGRATIONS: list[Callable[[psycopg.Cursor[Any], dict[str, sql.Composable]], None]] = [_create_v1]


def parse_url(url: str) -> tuple[str, dict[str, str], str]:
    """The libpq URL (our options removed), our options, and the URL as shown (no password)."""
    if not isinstance(url, str) or not url.startswith(("postgresql://", "postgres://")):
        raise BadStoreURL("a PostgreSQL store URL is 'postgresql://user@host:port/database[?options]'")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise BadStoreURL(f"bad PostgreSQL store URL {_shown(url)!r}: {exc}") from None
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    ours = {k: v for k, v in pairs if k in _OWN_OPTIONS}
    if len(ours) != sum(1 for k, _ in pairs if k in _OWN_OPTIONS):
        raise BadStoreURL("a PostgreSQL store option is given twice in the URL")
    libpq = [(k, v) for k, v in pairs if k not in _OWN_OPTIONS]
    if not any(k == "connect_timeout" for k, _ in libpq):
        libpq.append(("connect_timeout", "10"))
    conninfo = _unsplit(parts._replace(query=urlencode(libpq, quote_via=quote)))
    shown = _unsplit(parts._replace(netloc=_netloc(parts), query=urlencode(_redacted(pairs), quote_via=quote)))
    return conninfo, ours, shown


def _unsplit(parts: Any) -> str:
    joined = str(urlunsplit(parts))
    return joined if parts.netloc else joined.replace(":", "://", 1)  # urlunsplit drops an empty "//"


def _netloc(parts: Any) -> str:
    if parts.password is None:
        return str(parts.netloc)
    user, _, host = parts.netloc.rpartition("@")
    return f"{user.partition(':')[0]}:***@{host}"


def _redacted(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, "***" if k == "password" else v) for k, v in pairs]


def _shown(url: str) -> str:
    """``url`` with anything that could be a password masked (for errors about a URL that does not parse)."""
    return re.sub(r"(://[^:/@?]*:)[^@/?]*@", r"\1***@", re.sub(r"(password=)[^&]*", r"\1***", url))


class PostgresStore:
    """Sessions in PostgreSQL tables (see the module docstring for the URL and its options).

    Args:
        url: ``postgresql://user[:password]@host[:port]/database[?options]``.
        max_messages, pool_size, timeout: the same options as keywords (they win over the URL's).
    """

    def __init__(
        self,
        url: str,
        *,
        max_messages: int | None = None,
        pool_size: int | None = None,
        timeout: float | None = None,
    ) -> None:
        conninfo, options, shown = parse_url(url)
        self.url = shown
        self._secrets = _secrets(url)
        self.max_messages = checked_cap(max_messages if max_messages is not None else options.get("max_messages"))
        self.pool_size = _pool_size(pool_size if pool_size is not None else options.get("pool_size", 5))
        self.timeout = seconds(timeout if timeout is not None else options.get("timeout", 30), "timeout")
        statement_timeout = options.get("statement_timeout")
        self._statement_ms = (
            None if statement_timeout is None else int(seconds(statement_timeout, "statement_timeout") * 1000)
        )
        self._prepare_threshold = _prepare_threshold(options.get("prepare_threshold", "5"))
        schema = options.get("schema")
        prefix = options.get("table_prefix", "fm_")
        if schema is not None and not _NAME.fullmatch(schema):
            raise BadStoreURL(f"schema must be a plain SQL name (letters, digits, _), got {schema!r}")
        if not _PREFIX.fullmatch(prefix):
            raise BadStoreURL(f"table_prefix must be letters, digits and _, not starting with a digit, got {prefix!r}")
        self.schema, self.table_prefix = schema, prefix
        self._lock = threading.Lock()
        self._closed = False
        self._conninfo = _Secret(conninfo)
        self._idle: list[tuple[psycopg.Connection[Any], float]] = []
        self._slots = threading.BoundedSemaphore(self.pool_size)
        try:
            first = self._connect()
        except _ConnectFailed as exc:
            message = str(exc)
        else:
            message = ""
        if message:  # a plain StoreError, raised outside the except: nothing attached
            raise StoreError(message)
        self._tables = self._names()
        try:
            self._migrate(first)
            self._sql = self._statements(first)
        except BaseException:
            first.close()  # a newer schema, tables it may not create: the store never opens
            raise
        self._idle.append((first, time.monotonic()))
        self._release = weakref.finalize(self, _close_all, self._idle)  # a store dropped unclosed

    def __repr__(self) -> str:
        return f"PostgresStore({self.url!r})"

    # -- setup ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        """A new connection; errors are raised outside the ``except``, so no driver error (which may
        quote the conninfo) is attached as ``__context__``."""
        problem = ""
        kind: type[StoreError] = _ConnectFailed
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, prepare_threshold=self._prepare_threshold)
        except psycopg.OperationalError as exc:  # the server: down, starting, refusing us
            problem = self._clean(exc)
        except psycopg.Error as exc:  # the URL itself: no use trying again
            problem, kind = self._clean(exc), BadStoreURL
        else:
            if self._statement_ms is not None:
                conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(self._statement_ms)))
            return conn
        raise kind(f"cannot connect to {self.url}: {problem}")

    @contextmanager
    def _connection(self, deadline: float) -> Iterator[psycopg.Connection[Any]]:
        """A connection for one operation: an idle one, or a new one; kept for reuse when it is healthy."""
        if not self._slots.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise StoreError(f"{self.url}: all {self.pool_size} connections stayed busy for {self.timeout:g} s")
        try:
            conn = None
            with self._lock:
                if self._closed:
                    raise StoreError(f"{self!r} is closed")
                now = time.monotonic()
                while self._idle and conn is None:
                    conn, since = self._idle.pop()
                    if conn.closed or now - since > MAX_IDLE_S:
                        conn.close()
                        conn = None
            if conn is None:
                conn = self._connect()
            try:
                yield conn
            finally:
                healthy = not conn.broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                with self._lock:
                    if healthy and not self._closed:
                        self._idle.append((conn, time.monotonic()))
                        conn = None
                if conn is not None:
                    conn.close()
        finally:
            self._slots.release()

    def _names(self) -> dict[str, sql.Composable]:
        def table(name: str) -> sql.Composable:
            full = self.table_prefix + name
            return sql.Identifier(self.schema, full) if self.schema else sql.Identifier(full)

        return {name: table(name) for name in ("sessions", "messages", "meta")}

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or migrate the tables in one transaction, under an advisory lock; refuse a newer schema."""
        meta = sql.SQL("{}").format(self._tables["meta"]).as_string(conn)
        version_query = sql.SQL("SELECT value FROM {meta} WHERE key = 'schema_version'").format(**self._tables)
        problem = ""
        try:
            with conn.transaction():
                if conn.execute("SELECT to_regclass(%s)", (meta,)).fetchone() not in (None, (None,)):
                    found = conn.execute(version_query).fetchone()
                    if found is not None and int(found[0]) == SCHEMA_VERSION:
                        return
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"finite-memory {meta}",))
                schema_query = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
                if self.schema and conn.execute(schema_query, (self.schema,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(self.schema)))
                conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {meta} (key TEXT PRIMARY KEY, value TEXT NOT NULL)").format(
                        **self._tables
                    )
                )
                found = conn.execute(version_query).fetchone()
                version = int(found[0]) if found else 0
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.url} has schema version {version}, newer than this finite-memory supports "
                        f"({SCHEMA_VERSION}); upgrade finite-memory-core"
                    )
                with conn.cursor() as cur:
                    for step in range(version, SCHEMA_VERSION):
                        MIGRATIONS[step](cur, self._tables)
                conn.execute(
                    sql.SQL(
                        "INSERT INTO {meta} (key, value) VALUES ('schema_version', %s) "
                        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
                    ).format(**self._tables),
                    (str(SCHEMA_VERSION),),
                )
            return
        except psycopg.Error as exc:
            problem = self._clean(exc)
        raise StoreError(f"{self.url}: cannot set up the tables: {problem}")  # outside the except: no driver error

    def _statements(self, conn: psycopg.Connection[Any]) -> dict[str, str]:
        t = self._tables
        text = {
            "append": (
                "WITH claimed AS ("
                " UPDATE {sessions} SET next_id = %(next)s, archived = archived + %(kept)s, updated = now(),"
                " state = COALESCE(%(state)s, state)"
                " WHERE name = %(session)s AND next_id = %(first)s RETURNING archived),"
                " added AS ("
                " INSERT INTO {messages}"
                " (session, id, turn, role, content, name, tool_calls, tool_call_id, meta, escaped)"
                " SELECT %(session)s, r.* FROM unnest(%(ids)s::bigint[], %(turns)s::bigint[], %(roles)s::text[],"
                " %(contents)s::text[], %(names)s::text[], %(calls)s::text[], %(call_ids)s::text[], %(metas)s::text[],"
                " %(escaped)s::boolean[]) AS r"
                " WHERE EXISTS (SELECT 1 FROM claimed) RETURNING 1)"
                " SELECT (SELECT archived FROM claimed), (SELECT count(*) FROM added),"
                " (SELECT next_id FROM {sessions} WHERE name = %(session)s)"
            ),
            "create": (
                "INSERT INTO {sessions} (name, next_id, archived) VALUES (%s, %s, 0) ON CONFLICT (name) DO NOTHING"
            ),
            "next_id": "SELECT next_id FROM {sessions} WHERE name = %s",
            "lock": "SELECT next_id FROM {sessions} WHERE name = %s FOR UPDATE",
            "rows": f"SELECT {_COLUMNS} FROM {{messages}} WHERE session = %s AND id > %s ORDER BY id",
            "range": f"SELECT {_COLUMNS} FROM {{messages}} WHERE session = %s AND id BETWEEN %s AND %s ORDER BY id",
            "sizes": (
                "SELECT turn, count(*) FROM {messages} WHERE session = %s AND role <> 'system'"
                " GROUP BY turn ORDER BY turn"
            ),
            "trim": "DELETE FROM {messages} WHERE session = %s AND role <> 'system' AND turn < %s",
            "archived": "UPDATE {sessions} SET archived = archived - %s WHERE name = %s",
            "erase": (
                "WITH gone AS (DELETE FROM {messages} WHERE session = %s AND id = ANY(%s) RETURNING role)"
                " SELECT count(*) FILTER (WHERE role <> 'system') FROM gone"
            ),
            "forgot": (
                "UPDATE {sessions} SET next_id = next_id + 1, archived = archived - %s, state = %s, updated = now()"
                " WHERE name = %s RETURNING next_id"
            ),
            "state": "SELECT state FROM {sessions} WHERE name = %s",
            "sessions": "SELECT name FROM {sessions} ORDER BY name",
            "count": "SELECT count(*) FROM {messages} WHERE session = %s",
            "info": (
                "SELECT next_id, extract(epoch FROM created), extract(epoch FROM updated)"
                " FROM {sessions} WHERE name = %s"
            ),
            "delete_messages": "DELETE FROM {messages} WHERE session = %s",
            "delete_session": "DELETE FROM {sessions} WHERE name = %s",
        }
        return {key: sql.SQL(query).format(**t).as_string(conn) for key, query in text.items()}

    # -- running statements ----------------------------------------------------------------

    def _run(self, work: Callable[[psycopg.Connection[Any], bool], T]) -> T:
        """Run ``work(conn, retried)`` on a pooled connection, again on a fresh one while the server is away.

        ``retried`` tells ``work`` that an earlier attempt broke off and may have committed.
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        retried = False
        while True:
            if self._closed:
                raise StoreError(f"{self!r} is closed")
            problem = None
            try:
                with self._connection(deadline) as conn:
                    return work(conn, retried)
            except psycopg.Error as exc:
                state = exc.sqlstate or "08"  # no SQLSTATE: the client lost the connection
                problem = self._clean(exc)
                if state.startswith(_RETRY_STATES) and time.monotonic() + delay <= deadline:
                    logger.info("%s: %s; trying again on a new connection", self.url, problem)
                    problem = None
            except _ConnectFailed as exc:
                if time.monotonic() + delay > deadline:
                    raise StoreError(str(exc)) from None
                logger.info("%s; trying again", exc)
            except UnicodeEncodeError as exc:
                problem = f"text that cannot be stored as UTF-8 ({exc.reason})"
            if problem is not None:  # raised here, not in the except: no driver error (or conninfo) attached
                raise StoreError(f"{self.url}: {problem}")
            retried = True
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _clean(self, exc: BaseException) -> str:
        """An error's first line, with the password masked wherever it might appear."""
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    # -- the Store interface -------------------------------------------------------------------

    def append(
        self, session: str, messages: Sequence[Message], *, state: str | None = None, create: bool = True
    ) -> None:
        if not messages:
            return
        params = _params(session, messages, state)
        cap = self.max_messages

        def work(conn: psycopg.Connection[Any], retried: bool) -> None:
            for _ in range(3):  # a new session: create its row, then append
                # one statement: claim the next id, insert, and (when the claim failed) say what the
                # next id was as the statement began; it may be older than the writer that won, which
                # Memory's catch-up allows for, and it saves a round trip per conflict
                if cap is None:
                    archived, added, expected = conn.execute(self._sql["append"], params).fetchone()  # type: ignore[misc]
                else:
                    with conn.transaction():
                        archived, added, expected = conn.execute(self._sql["append"], params).fetchone()  # type: ignore[misc]
                        if added and archived > cap:
                            self._trim(conn, session)
                if added:
                    return
                if expected is not None:
                    if retried and self._landed(conn, session, messages):
                        return  # the attempt that broke off had committed
                    raise StoreConflict(
                        f"session {session!r}: next id is {expected}, got {messages[0].id}", expected=int(expected)
                    )
                if not create:
                    raise StoreError(session_gone(session, self.url))
                conn.execute(self._sql["create"], (session, messages[0].id))
            raise StoreError(f"{self.url}: session {session!r} could not be created")

        self._run(work)

    def _landed(self, conn: psycopg.Connection[Any], session: str, messages: Sequence[Message]) -> bool:
        """Whether exactly these messages are stored under their ids (an append retried after its commit)."""
        rows = conn.execute(self._sql["range"], (session, messages[0].id, messages[-1].id)).fetchall()
        where = f"{self.url}: session {session!r}"
        return [_message(row, where) for row in rows] == list(messages)

    def _trim(self, conn: psycopg.Connection[Any], session: str) -> None:
        """Drop whole oldest turns over the cap (by :func:`retained_from`), inside the append's transaction."""
        sizes = [(int(turn), int(n)) for turn, n in conn.execute(self._sql["sizes"], (session,)).fetchall()]
        keep_from = retained_from(sizes, self.max_messages)  # type: ignore[arg-type]
        if keep_from is None:
            return
        removed = conn.execute(self._sql["trim"], (session, keep_from)).rowcount
        conn.execute(self._sql["archived"], (removed, session))

    def messages(self, session: str, *, after: int | None = None) -> list[Message]:
        query = self._sql["rows"]
        rows = self._run(  # binary: ints and text come back without parsing (a reopen reads every row)
            lambda conn, _: (
                conn.cursor(binary=True).execute(query, (session, -1 if after is None else after)).fetchall()
            )
        )
        where = f"{self.url}: session {session!r}"
        with paused_gc():
            return [_message(row, where) for row in rows]

    def next_id(self, session: str) -> int | None:
        row = self._run(lambda conn, _: conn.execute(self._sql["next_id"], (session,)).fetchone())
        return int(row[0]) if row else None

    def forget(self, session: str, ids: Sequence[int], *, state: str) -> int:
        """Erase messages by id; see the module docstring for what PostgreSQL keeps until VACUUM."""
        wanted = sorted(set(ids))

        def work(conn: psycopg.Connection[Any], _: bool) -> int:
            with conn.transaction():
                if conn.execute(self._sql["lock"], (session,)).fetchone() is None:
                    raise StoreError(session_gone(session, self.url))
                (erased,) = conn.execute(self._sql["erase"], (session, wanted)).fetchone()  # type: ignore[misc]
                (next_id,) = conn.execute(self._sql["forgot"], (erased, state, session)).fetchone()  # type: ignore[misc]
                return int(next_id)

        return self._run(work)

    def read_state(self, session: str) -> str | None:
        row = self._run(lambda conn, _: conn.execute(self._sql["state"], (session,)).fetchone())
        return row[0] if row else None

    def sessions(self) -> list[str]:
        return [name for (name,) in self._run(lambda conn, _: conn.execute(self._sql["sessions"]).fetchall())]

    def count(self, session: str) -> int:
        return int(self._run(lambda conn, _: conn.execute(self._sql["count"], (session,)).fetchone())[0])  # type: ignore[index]

    def info(self, session: str) -> dict[str, Any] | None:
        """A session's message count, next id and times (``None`` when there is no such session)."""
        row = self._run(lambda conn, _: conn.execute(self._sql["info"], (session,)).fetchone())
        if row is None:
            return None
        return {
            "session": session,
            "messages": self.count(session),
            "next_id": int(row[0]),
            "created": float(row[1]),
            "updated": float(row[2]),
        }

    def delete(self, session: str) -> None:
        def work(conn: psycopg.Connection[Any], _: bool) -> None:
            with conn.transaction():
                conn.execute(self._sql["delete_messages"], (session,))
                conn.execute(self._sql["delete_session"], (session,))

        self._run(work)

    def close(self) -> None:
        """Close the idle connections (busy ones close when their operation ends); the store is done."""
        with self._lock:
            self._closed = True
            self._release()


def _close_all(idle: list[tuple[psycopg.Connection[Any], float]]) -> None:
    while idle:
        idle.pop()[0].close()


class _ConnectFailed(StoreError):
    """The server could not be reached (yet): worth another attempt until the deadline."""


class _Secret(str):
    """A password kept to mask it in messages; its repr never shows it."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


def _secrets(url: str) -> list[_Secret]:
    """The password as it may appear in a message: raw and percent-encoded."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""] + [v for k, v in parse_qsl(parts.query) if k == "password"]
    except ValueError:
        return []
    secrets = {s for p in found if p for s in (p, unquote(p), quote(p, safe=""))}
    return [_Secret(s) for s in sorted(secrets, key=len, reverse=True)]


def _prepare_threshold(value: str) -> int | None:
    if value.lower() == "none":
        return None
    if not value.isdigit():
        raise BadStoreURL(f"prepare_threshold must be a whole number or 'none', got {value!r}")
    return int(value)


def _pool_size(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise BadStoreURL(f"pool_size must be an int from 1 to 1000, got {value!r}")
    return value


def _params(session: str, messages: Sequence[Message], state: str | None) -> dict[str, Any]:
    """The append statement's parameters: one array per column."""
    columns: dict[str, list[Any]] = {
        key: [] for key in ("ids", "turns", "roles", "contents", "names", "calls", "call_ids", "metas", "escaped")
    }
    for m in messages:
        content, name, call_id = m.content, m.name, m.tool_call_id
        escaped = "\x00" in content or "\x00" in (name or "") or "\x00" in (call_id or "")
        if escaped:
            content = json.dumps(content)
            name = json.dumps(name) if name is not None else None
            call_id = json.dumps(call_id) if call_id is not None else None
        columns["ids"].append(m.id)
        columns["turns"].append(m.turn)
        columns["roles"].append(m.role)
        columns["contents"].append(content)
        columns["names"].append(name)
        columns["calls"].append(json.dumps(list(m.tool_calls), ensure_ascii=False) if m.tool_calls else None)
        columns["call_ids"].append(call_id)
        columns["metas"].append(json.dumps(m.meta, ensure_ascii=False) if m.meta else None)
        columns["escaped"].append(escaped)
    return {
        "session": session,
        "first": messages[0].id,
        "next": messages[-1].id + 1,  # type: ignore[operator]
        "kept": sum(1 for m in messages if m.role != "system"),
        "state": state,
        **columns,
    }


def _message(row: tuple[Any, ...], where: str) -> Message:
    role, content, name, calls, call_id, meta, id_, turn, escaped = row
    if escaped:
        try:
            content = json.loads(content)
            name = json.loads(name) if name is not None else None
            call_id = json.loads(call_id) if call_id is not None else None
        except ValueError:
            problem = f"{where}, message {id_!r}: an escaped row that is not JSON; was it edited by hand?"
            raise StoreError(problem) from None
    return stored_message(role, content, name, calls, call_id, meta, id_, turn, where)
