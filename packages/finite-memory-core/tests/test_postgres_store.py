"""The PostgreSQL store against a real server started by the test session: URLs, secrets, schema
versions, restarts, a commit whose reply is lost, pooling, hand-edited rows, and what VACUUM erases."""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from finite_memory import Memory, Message, StoreError
from finite_memory.stores import open_store
from finite_memory.stores._base import trusted_message
from finite_memory.stores.contract import stamped
from finite_memory.stores.pgtest import PASSWORD, TemporaryPostgres

psycopg = pytest.importorskip("psycopg")
postgres_module = pytest.importorskip("finite_memory.stores.postgres")
PostgresStore = postgres_module.PostgresStore

_names = itertools.count()


@pytest.fixture
def url(postgres: TemporaryPostgres) -> str:
    """The server's URL with a schema of its own for this test."""
    return postgres.url + f"?schema=t_{next(_names)}"


def _sql(postgres: TemporaryPostgres, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        cur = conn.execute(query, args or None)
        return cur.fetchall() if cur.description else []


def test_urls_and_options(url: str, postgres: TemporaryPostgres) -> None:
    store = open_store(
        url + "&max_messages=50&pool_size=3&table_prefix=chat_&timeout=5&statement_timeout=2&prepare_threshold=none"
    )
    assert isinstance(store, PostgresStore)
    assert (store.max_messages, store.pool_size, store.timeout, store.table_prefix) == (50, 3, 5.0, "chat_")
    schema = url.rpartition("=")[2]
    tables = {row[0] for row in _sql(postgres, "SELECT tablename FROM pg_tables WHERE schemaname = %s", schema)}
    assert tables == {"chat_sessions", "chat_messages", "chat_meta"}
    with store._connection(time.monotonic() + 5) as conn:
        assert conn.execute("SHOW statement_timeout").fetchone()[0] == "2s"
        assert conn.prepare_threshold is None
    Memory(store=store, session="s").add("user", "hi")
    info = store.info("s")
    assert info is not None and (info["messages"], info["next_id"]) == (1, 1) and info["updated"] >= info["created"]
    assert store.info("nobody") is None
    store.close()
    store.close()  # twice is fine
    with pytest.raises(StoreError, match="closed"):
        store.sessions()
    alias = open_store(url.replace("postgresql://", "postgres://"))
    assert isinstance(alias, PostgresStore) and alias.sessions() == []
    alias.close()
    for bad, problem in (
        ("postgresql://u@h:notaport/db", "port"),
        ("pool_size=0", "pool_size"),
        ("schema=x;drop", "schema"),
        ("table_prefix=1x", "table_prefix"),
        ("timeout=nan", "timeout"),
        ("max_messages=-1", "max_messages"),
        ("timeout=1&timeout=2", "twice"),
        ("prepare_threshold=-1", "prepare_threshold"),
    ):
        with pytest.raises(ValueError, match=problem) as caught:
            open_store(bad if "://" in bad else f"{postgres.url}?{bad}")
        assert isinstance(caught.value, StoreError)
    with pytest.raises(StoreError, match="invalid URI query parameter"):
        open_store(url + "&nope=1")  # libpq names what it does not know


def test_no_password_in_repr_errors_or_logs(
    url: str, postgres: TemporaryPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = open_store(url)
    wrong = url.replace(PASSWORD, "not-the-" + PASSWORD)
    shown = [repr(store), str(store), repr(vars(store)), store.url]
    with pytest.raises(StoreError) as caught:
        open_store(wrong)
    error = caught.value
    assert "password authentication failed" in str(error)
    assert error.__cause__ is None and error.__context__ is None  # no driver error carrying the conninfo
    with pytest.raises(StoreError) as refused:
        open_store(f"postgresql://fm:{PASSWORD}@127.0.0.1:1/postgres?connect_timeout=2")
    assert "refused" in str(refused.value) or "connect" in str(refused.value)
    with pytest.raises(ValueError) as bad_url:
        open_store(f"postgresql://fm:{PASSWORD}@127.0.0.1:x/postgres")
    with pytest.raises(StoreError) as in_query:
        open_store(f"postgresql://fm@127.0.0.1:{postgres.port}/postgres?password=wrong-{PASSWORD}")
    with pytest.raises(ValueError) as bad_escape:
        open_store(f"postgresql://fm:{PASSWORD}%zz@127.0.0.1:{postgres.port}/postgres")  # libpq quotes the token
    shown += [str(error), repr(error), str(refused.value), str(bad_url.value), str(in_query.value)]
    for caught_error in (error, refused.value, bad_url.value, in_query.value, bad_escape.value):
        shown += [str(caught_error), repr(caught_error.__context__), repr(caught_error.__cause__)]
    postgres.restart()  # the store logs the broken connections it replaces
    store.sessions()
    store.close()
    shown += [record.getMessage() for record in caplog.records] + [repr(r.args) for r in caplog.records]
    assert any("trying again" in r.getMessage() for r in caplog.records)  # it logged, and never the password
    assert all(PASSWORD not in text for text in shown), [text for text in shown if PASSWORD in text]
    assert "fm:***@127.0.0.1" in repr(store)


def test_newer_schema_is_refused_and_migrations_run(
    url: str, postgres: TemporaryPostgres, monkeypatch: pytest.MonkeyPatch
) -> None:
    schema = url.rpartition("=")[2]
    mem = Memory(store=url, session="s")
    mem.add("user", "kept across the migration")
    mem.close()
    _sql(postgres, f"UPDATE {schema}.fm_meta SET value = '9' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 9, newer"):
        open_store(url)
    _sql(postgres, f"UPDATE {schema}.fm_meta SET value = '1' WHERE key = 'schema_version'")

    def add_title(cur: object, tables: dict[str, object]) -> None:
        from psycopg import sql

        cur.execute(sql.SQL("ALTER TABLE {sessions} ADD COLUMN title TEXT").format(**tables))  # type: ignore[attr-defined]

    monkeypatch.setattr(postgres_module, "MIGRATIONS", [*postgres_module.MIGRATIONS, add_title])
    monkeypatch.setattr(postgres_module, "SCHEMA_VERSION", 2)
    opened: list[object] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(PostgresStore(url))
        except BaseException as exc:
            errors.append(exc)

    racers = [threading.Thread(target=open_one) for _ in range(4)]  # migrating at once: one does it
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    assert not errors and len(opened) == 4
    columns = _sql(postgres, "SELECT column_name FROM information_schema.columns WHERE table_schema = %s", schema)
    assert ("title",) in columns
    assert _sql(postgres, f"SELECT value FROM {schema}.fm_meta") == [("2",)]
    assert [m.content for m in opened[0].messages("s")] == ["kept across the migration"]  # type: ignore[attr-defined]
    for store in opened:
        store.close()  # type: ignore[attr-defined]


def test_adds_ride_through_a_server_restart(url: str, postgres: TemporaryPostgres) -> None:
    mem = Memory(store=url + "&timeout=30", session="s")
    returned: list[int] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            try:
                returned.append(mem.add("user", f"message {n}").id)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)
                return
            n += 1

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.3)
    postgres.restart(mode="immediate")  # a crash and recovery in the middle of the run
    time.sleep(0.3)
    postgres.kill()  # kill -9 of the postmaster, then a start
    postgres.start()
    time.sleep(0.3)
    stop.set()
    thread.join(timeout=60)
    assert not errors
    stored = Memory(store=url, session="s").messages
    assert [m.id for m in stored] == list(range(len(stored))) == returned  # every add stored exactly once
    assert [m.content for m in stored] == [f"message {i}" for i in range(len(stored))]
    mem.close()


def test_a_server_away_too_long_raises_and_changes_nothing(url: str, postgres: TemporaryPostgres) -> None:
    mem = Memory(store=url + "&timeout=1", session="s")
    mem.add("user", "before")
    postgres.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot connect"):
            mem.add("user", "while down")
        assert time.monotonic() - started < 15
        assert [m.content for m in mem.messages] == ["before"]
    finally:
        postgres.start()
    mem.add("user", "after")  # the pool reconnects by itself
    assert [m.content for m in Memory(store=url, session="s").messages] == ["before", "after"]
    mem.close()


class _CuttingProxy:
    """A TCP proxy on 127.0.0.1 that, once armed, lets the next append reach the server and commit,
    then closes the client's connection instead of passing on the reply: the commit landed, the
    client cannot know."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.armed = threading.Event()
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closing:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target))
            cut = threading.Event()
            threading.Thread(target=self._upstream, args=(client, server, cut), daemon=True).start()
            threading.Thread(target=self._downstream, args=(server, client, cut), daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, cut: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := client.recv(65536):
                if self.armed.is_set() and b"WITH claimed AS" in data:
                    self.armed.clear()
                    cut.set()
                server.sendall(data)

    def _downstream(self, server: socket.socket, client: socket.socket, cut: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if cut.is_set():
                    if b"Z\x00\x00\x00\x05" in data:  # ReadyForQuery: the statement has committed
                        self.cuts += 1
                        break
                    continue
                client.sendall(data)
        for sock in (client, server):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.closing = True
        self.listener.close()


def test_an_append_whose_commit_reply_is_lost_is_stored_once(postgres: TemporaryPostgres) -> None:
    proxy = _CuttingProxy(postgres.port)
    url = postgres.url.replace(f":{postgres.port}/", f":{proxy.port}/") + f"?schema=t_{next(_names)}&sslmode=disable"
    try:
        mem = Memory(store=url, session="s")
        mem.add("user", "first")
        proxy.armed.set()
        second = mem.add("assistant", "second: committed, reply lost, retried")
        mem.add("user", "third")
        assert proxy.cuts == 1
        stored = Memory(store=url, session="s").messages
        assert [(m.id, m.content) for m in stored] == [(0, "first"), (1, second.content), (2, "third")]
        mem.close()
    finally:
        proxy.close()


def test_the_pool_is_bounded(url: str, postgres: TemporaryPostgres) -> None:
    store = PostgresStore(url + "&pool_size=2&application_name=fm-bounded")
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            mem = Memory(store=store, session=f"t{n}")
            for i in range(20):
                mem.add("user", f"{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    count = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'fm-bounded'"
    assert not errors and _sql(postgres, count)[0][0] <= 2
    assert all(store.count(f"t{n}") == 20 for n in range(8))
    store.close()


def test_hand_edited_rows_give_a_clear_error(url: str, postgres: TemporaryPostgres) -> None:
    schema = url.rpartition("=")[2]
    store = PostgresStore(url)
    store.append("s", stamped([Message("user", "fine"), Message("assistant", "nul \x00 kept", name="a\x00b")]))
    assert [m.content for m in store.messages("s")] == ["fine", "nul \x00 kept"]
    assert store.messages("s")[1].name == "a\x00b"
    for edit, problem in (
        ("role = 'evil'", "unknown role 'evil'"),
        ("meta = '{bad'", "not a valid message"),
        ("meta = '[1]'", "meta must be a dict"),
        ("tool_calls = '{\"x\": 1}'", "tool_calls"),
        ("escaped = true", "escaped row that is not JSON"),
    ):
        _sql(postgres, f"UPDATE {schema}.fm_messages SET {edit} WHERE id = 0")
        with pytest.raises(StoreError, match=problem) as caught:
            Memory(store=url, session="s")
        assert "message 0" in str(caught.value)
        _sql(
            postgres, f"UPDATE {schema}.fm_messages SET role = 'user', meta = NULL, tool_calls = NULL, escaped = false"
        )
    _sql(postgres, f"UPDATE {schema}.fm_messages SET turn = 5 WHERE id = 0")
    with pytest.raises(StoreError, match="goes back to turn"):
        Memory(store=url, session="s")
    surrogate = trusted_message("user", "\ud800 lone surrogate", None, None, None, {}, 2, 1)  # no validation
    with pytest.raises(StoreError, match="UTF-8"):
        store.append("s", [surrogate])
    store.close()


def test_forget_and_what_vacuum_full_erases(url: str, postgres: TemporaryPostgres) -> None:
    """forget() removes rows for every reader at once; the bytes stay in the table's pages until
    VACUUM FULL rewrites them (what docs/stores.md says)."""
    schema = url.rpartition("=")[2]
    secret = "passport number ZX-9913-PLUM"
    mem = Memory("rolling_summary", max_tokens=200, store=url, session="s", summary_tokens=64)
    for i in range(30):
        mem.add("user", f"turn {i}: " + (secret if i == 3 else "talk about the weather and the garden"))
        mem.add("assistant", f"reply {i}")
        mem.context()
    mem.add("user", "now")  # the summary, which quotes the secret, is stored with this add
    assert secret in (mem.store.read_state("s") or "")
    mem.forget(turns=[3])
    assert secret not in (mem.store.read_state("s") or "") and secret not in str(mem.policy.state())
    assert all(secret not in m.content for m in Memory(store=url, session="s").messages)
    assert secret not in str([m.content for m in mem.context().messages])

    def table_files() -> bytes:
        _sql(postgres, "CHECKPOINT")
        found = b""
        for table in ("fm_messages", "fm_sessions"):
            (path,) = _sql(postgres, "SELECT pg_relation_filepath(%s)", f"{schema}.{table}")[0]
            found += b"".join(p.read_bytes() for p in Path(postgres.data).glob(f"{path}*"))
        return found

    assert secret.encode() in table_files()  # dead row versions: deleted for readers, not yet on disk
    _sql(postgres, f"VACUUM FULL {schema}.fm_messages")
    _sql(postgres, f"VACUUM FULL {schema}.fm_sessions")
    assert secret.encode() not in table_files()
    mem.close()
