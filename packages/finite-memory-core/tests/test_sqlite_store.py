"""The SQLite store: write-through, reopening, sessions, retention, schema versions, threads, the CLI."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from _durable_helpers import fill, questions, same_context

from finite_memory import Memory, Message, StoreError
from finite_memory._registry import plugins
from finite_memory.policies import Sliding
from finite_memory.stores import Store, StoreConflict, open_store
from finite_memory.stores import sqlite as sqlite_store
from finite_memory.stores.sqlite import SQLiteStore

POLICIES = sorted(plugins("policies"))


def url(path: Path, query: str = "") -> str:
    return f"sqlite:///{path}" + (f"?{query}" if query else "")  # an absolute path gives sqlite:////...


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/abs.db")
    assert isinstance(absolute, SQLiteStore) and isinstance(absolute, Store)
    assert absolute.path == tmp_path / "abs.db" and (tmp_path / "abs.db").exists()
    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///rel.db?max_messages=10&synchronous=normal&timeout=5")
    assert (tmp_path / "rel.db").exists()
    assert (relative.max_messages, relative.synchronous, relative.timeout) == (10, "normal", 5.0)  # type: ignore[attr-defined]
    for bad in (
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///x.db?nope=1",
        "sqlite:///x.db?max_messages=0",
        "sqlite:///x.db?synchronous=sometimes",
    ):
        with pytest.raises(ValueError):
            open_store(bad)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(f"sqlite:///{tmp_path}/no/such/folder.db")


def test_every_add_is_on_disk_before_it_returns(tmp_path: Path) -> None:
    db = tmp_path / "chats.db"
    mem = Memory(store=url(db), session="user-42")
    reader = sqlite3.connect(db)
    for i in range(5):
        message = mem.add("user" if i % 2 == 0 else "assistant", f"line {i}", meta={"i": i})
        rows = reader.execute("SELECT id, content, meta FROM messages WHERE session = 'user-42' ORDER BY id").fetchall()
        assert rows[-1] == (message.id, f"line {i}", json.dumps({"i": i}))
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert reader.execute("PRAGMA user_version").fetchone()[0] == sqlite_store.SCHEMA_VERSION


def test_batch_is_one_transaction(tmp_path: Path) -> None:
    mem = Memory(store=url(tmp_path / "c.db"), session="s")
    mem.add("user", "hi")
    with pytest.raises(ValueError, match="answers no tool call"):
        mem.extend([Message("assistant", "ok"), Message("tool", "orphan", tool_call_id="nope")])
    assert mem.store.count("s") == 1 and len(mem) == 1


@pytest.mark.parametrize("name", POLICIES)
def test_reopened_session_builds_the_same_context(tmp_path: Path, name: str) -> None:
    store_url = url(tmp_path / "c.db")
    mem = fill(
        Memory(name, max_tokens=500, reserve_output=100, system="Be brief.", store=store_url, session="u"), sessions=6
    )
    for q in questions(sessions=6)[:3]:
        mem.context(query=q)
    mem.add("user", "one more question")  # the policy's state is written with the next add
    again = Memory(name, max_tokens=500, reserve_output=100, system="Be brief.", store=store_url, session="u")
    assert again.messages == mem.messages
    assert [(t.number, t.ids) for t in again.turns] == [(t.number, t.ids) for t in mem.turns]
    for q in questions(sessions=6):
        same_context(mem, again, q)


def test_reopen_with_another_policy_and_budget_keeps_the_whole_archive(tmp_path: Path) -> None:
    store_url = url(tmp_path / "c.db")
    mem = fill(Memory(max_tokens=2000, store=store_url, session="u"))
    small = Memory(Sliding(sink_turns=1), max_tokens=100, reserve_output=0, store=store_url, session="u")
    assert small.messages == mem.messages
    assert small.context().tokens <= 100
    assert Memory(store=store_url, session="other").messages == []


def test_sessions_list_count_delete(tmp_path: Path) -> None:
    store = SQLiteStore(url(tmp_path / "c.db"))
    for name in ("b", "a", "c"):
        m = Memory(store=store, session=name)
        m.add("user", f"hi {name}")
        m.add("assistant", "hello")
    assert store.sessions() == ["a", "b", "c"]
    assert store.count("a") == 2 and store.count("zzz") == 0
    store.delete("b")
    assert store.sessions() == ["a", "c"] and store.messages("b") == []
    info = store.info("a")
    assert info is not None and info["messages"] == 2 and info["next_id"] == 2
    assert store.info("b") is None
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.sessions()


def test_two_memories_on_one_session_interleave_without_losing_anything(tmp_path: Path) -> None:
    store_url = url(tmp_path / "c.db")
    a = Memory(store=store_url, session="shared")
    b = Memory(store=store_url, session="shared")
    a.add("user", "from a 1")
    b.add("user", "from b 1")  # b is behind: it catches up, then appends after a's message
    a.add("user", "from a 2")
    assert [m.content for m in b.messages] == ["from a 1", "from b 1"]
    assert [m.content for m in a.messages] == ["from a 1", "from b 1", "from a 2"]
    rows = Memory(store=store_url, session="shared").messages
    assert [(m.id, m.content) for m in rows] == [(0, "from a 1"), (1, "from b 1"), (2, "from a 2")]
    with pytest.raises(StoreConflict):
        a.store.append("shared", [rows[0]])


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = SQLiteStore(url(tmp_path / "c.db", "synchronous=normal"))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            mem = Memory(store=store, session="shared")
            own = Memory(store=store, session=f"t{n}")
            for i in range(40):
                mem.add("user", f"t{n}-{i}")
                own.add("user", f"t{n}-{i}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    shared = store.messages("shared")
    assert sorted(m.content for m in shared) == sorted(f"t{n}-{i}" for n in range(6) for i in range(40))
    assert [m.id for m in shared] == list(range(240))
    for n in range(6):
        assert [m.content for m in store.messages(f"t{n}")] == [f"t{n}-{i}" for i in range(40)]


def test_retention_drops_whole_oldest_turns_in_store_and_memory(tmp_path: Path) -> None:
    removed: list[list[int]] = []

    class Watching(Sliding):
        def on_remove(self, turns):  # type: ignore[no-untyped-def]
            removed.append([t.number for t in turns])

    store_url = url(tmp_path / "c.db", "max_messages=10")
    mem = Memory(Watching(), max_tokens=400, store=store_url, session="s")
    mem.add("system", "pinned note")
    for turn in range(8):
        mem.add("user", f"q{turn}")
        mem.add("assistant", f"a{turn}")
        if turn == 5:
            mem.add("assistant", "a5 bis")
    kept = [m.content for m in mem.messages]
    assert kept[0] == "pinned note"
    assert sum(1 for m in mem.messages if m.role != "system") <= 10
    assert [t.number for t in mem.turns] == [4, 5, 6, 7]
    assert removed and [n for batch in removed for n in batch] == [0, 1, 2, 3]
    again = Memory(max_tokens=400, store=store_url, session="s")
    assert again.messages == mem.messages
    assert [t.number for t in again.turns] == [4, 5, 6, 7]
    nxt = again.add("user", "q8")
    assert nxt.turn == 8 and nxt.id == mem.messages[-1].id + 1  # type: ignore[operator]
    # a single turn larger than the cap stays whole
    for i in range(15):
        again.add("assistant", f"long {i}")
    assert [t.number for t in again.turns] == [8] and len(again.turns[0].messages) == 16


def test_newer_schema_is_refused_and_migrations_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "c.db"
    SQLiteStore(url(db)).close()
    con = sqlite3.connect(db)
    con.execute("PRAGMA user_version = 9")
    con.close()
    with pytest.raises(StoreError, match="schema version 9, newer"):
        SQLiteStore(url(db))

    # a synthetic version 2 that adds a column: the file is brought forward on open, data kept
    old = tmp_path / "old.db"
    m = Memory(store=url(old), session="s")
    m.add("user", "kept across the migration")
    m.close()

    def add_title(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE sessions ADD COLUMN title TEXT")

    monkeypatch.setattr(sqlite_store, "MIGRATIONS", [*sqlite_store.MIGRATIONS, add_title])
    monkeypatch.setattr(sqlite_store, "SCHEMA_VERSION", 2)
    store = SQLiteStore(url(old))
    con = sqlite3.connect(old)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    assert "title" in [row[1] for row in con.execute("PRAGMA table_info(sessions)")]
    assert [m.content for m in store.messages("s")] == ["kept across the migration"]


def test_export_and_reload(tmp_path: Path) -> None:
    store_url = url(tmp_path / "c.db")
    mem = fill(Memory(max_tokens=400, store=store_url, session="u"))
    mem.save(tmp_path / "u.json")
    back = Memory.load(tmp_path / "u.json")
    assert back.messages == mem.messages and back.session == "u"
    same_context(mem, back, "Where do I live?")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "finite_memory", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )


def test_sessions_cli(tmp_path: Path) -> None:
    store_url = url(tmp_path / "c.db")
    mem = Memory(store=store_url, session="user-42")
    mem.add("user", "I moved to Lisbon.")
    mem.add(
        "assistant", "", tool_calls=[{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    )
    mem.add("tool", "ok", tool_call_id="c1")
    Memory(store=store_url, session="user-7").add("user", "hi")

    listed = _cli("sessions", "list", "--store", store_url)
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["user-42\t3 messages", "user-7\t1 messages"]
    shown = _cli("sessions", "show", "--store", store_url, "user-42")
    assert shown.stdout.splitlines() == [
        "#0 turn 0 user: I moved to Lisbon.",
        "#1 turn 0 assistant:  [tool_calls: c1]",
        "#2 turn 0 tool: ok [answers c1]",
    ]
    as_json = _cli("sessions", "show", "--store", store_url, "user-42", "--json", "--last", "1")
    assert [json.loads(line) for line in as_json.stdout.splitlines()] == [
        {"role": "tool", "content": "ok", "tool_call_id": "c1", "id": 2, "turn": 0}
    ]
    out = tmp_path / "export.json"
    exported = _cli("sessions", "export", "--store", store_url, "user-42", str(out), "--max-tokens", "300")
    assert exported.returncode == 0, exported.stderr
    assert Memory.load(out).messages == mem.messages and Memory.load(out).max_tokens == 300
    deleted = _cli("sessions", "delete", "--store", store_url, "user-7")
    assert deleted.returncode == 0 and "deleted session 'user-7' (1 messages)" in deleted.stdout
    missing = _cli("sessions", "delete", "--store", store_url, "user-7")
    assert missing.returncode == 2 and "no session 'user-7'" in missing.stderr and "Traceback" not in missing.stderr
    assert _cli("sessions", "list", "--store", store_url).stdout.splitlines() == ["user-42\t3 messages"]


def test_policy_state_is_kept_with_the_session_even_after_a_conflict(tmp_path: Path) -> None:
    from dataclasses import dataclass, field

    @dataclass
    class Noting(Sliding):
        name = "noting"
        notes: list = field(default_factory=list, init=False)

        def select(self, view):  # type: ignore[no-untyped-def]
            self.notes.append(len(view.turns))
            return super().select(view)

        def state(self) -> dict:
            return {"notes": list(self.notes)}

        def load_state(self, state: dict) -> None:
            self.notes = list(state["notes"])

    store_url = url(tmp_path / "c.db")
    a = Memory(Noting(), store=store_url, session="s")
    b = Memory(Noting(), store=store_url, session="s")
    a.add("user", "first")
    b.context()
    b.context()
    a.add("assistant", "a moves the session on")
    b.add("user", "b is behind: conflict, catch up, write again")  # the state must still be written
    again = Memory(Noting(), store=store_url, session="s")
    assert again.policy.notes == b.policy.notes == [0, 0]
    assert Memory(store=store_url, session="s").policy.name == "sliding"  # another policy ignores that state


def test_a_writer_left_behind_by_retention_rebuilds_its_view(tmp_path: Path) -> None:
    store_url = url(tmp_path / "c.db", "max_messages=6")
    a = Memory(store=store_url, session="s")
    b = Memory(store=store_url, session="s")
    a.add("user", "a0")
    for i in range(10):  # b writes enough turns that the store drops some a has never seen
        b.add("user", f"b{i}")
        b.add("assistant", f"ok {i}")
    a.add("user", "a1")  # conflict; what a missed starts after a gap: it rebuilds from the store
    stored = Memory(store=store_url, session="s").messages
    assert a.messages == stored
    assert [m.content for m in stored][-1] == "a1" and len(stored) <= 6


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts file descriptors through /proc")
def test_short_lived_threads_leave_no_connections_behind(tmp_path: Path) -> None:
    store = SQLiteStore(url(tmp_path / "c.db", "synchronous=normal"))
    Memory(store=store, session="s").add("user", "warm up")
    before = _open_fds()
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            store.append(f"t{n}", [Message("user", f"hi {n}", id=0, turn=0)])
            store.messages(f"t{n}")
        except BaseException as exc:
            errors.append(exc)

    for batch in range(60):  # 600 threads, 10 alive at a time, each gone after one append and one read
        threads = [threading.Thread(target=work, args=(batch * 10 + i,)) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    leaked = _open_fds() - before
    assert leaked <= 3 * sqlite_store.MAX_IDLE, f"{leaked} descriptors left open by 600 finished threads"
    assert len(store.sessions()) == 601
    store.close()
    assert _open_fds() <= before - 1  # closing the store releases the pooled connections


def test_hand_edited_rows_give_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    mem = Memory(store=url(db), session="s")
    mem.add("user", "fine")
    mem.add("assistant", "also fine", meta={"k": 1})
    mem.close()
    for edit, problem in (
        ("role = 'evil'", "unknown role 'evil'"),
        ("meta = '{bad'", "not a valid message"),
        ("meta = '[1]'", "meta must be a dict"),
        ("meta = '{\"x\": NaN}'", "NaN is not JSON"),
        ("tool_calls = '{\"x\": 1}'", "tool_calls"),
        ("role = 'tool'", "tool_call_id"),
        ("turn = 'x'", "turn must be an int"),
        ("content = x'6869'", "content must be str"),
    ):
        con = sqlite3.connect(db)
        con.execute(f"UPDATE messages SET {edit} WHERE id = 1")
        con.commit()
        with pytest.raises(StoreError, match=problem) as caught:
            Memory(store=url(db), session="s")
        assert "session 's', message 1" in str(caught.value)
        con.execute(
            "UPDATE messages SET role = 'assistant', content = 'also fine', meta = '{\"k\": 1}', "
            "tool_calls = NULL, turn = 0 WHERE id = 1"
        )
        con.commit()
        con.close()
    assert [m.content for m in Memory(store=url(db), session="s").messages] == ["fine", "also fine"]
    con = sqlite3.connect(db)
    con.execute("UPDATE messages SET turn = 5 WHERE id = 0")  # a later message in an earlier turn
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="inconsistent: message 1 goes back to turn 0"):
        Memory(store=url(db), session="s")


def test_text_sqlite_cannot_encode_is_a_store_error(tmp_path: Path) -> None:
    from finite_memory.stores._base import trusted_message

    store = SQLiteStore(url(tmp_path / "c.db"))
    surrogate = trusted_message("user", "\ud800 lone surrogate", None, None, None, {}, 0, 0)  # skips validation
    with pytest.raises(StoreError, match="UTF-8"):
        store.append("s", [surrogate])
    assert store.sessions() == []
