"""Erasure: Memory.forget against every policy, the files it leaves behind, the CLI, and bad input."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from _durable_helpers import fill, questions, same_context

from finite_memory import Memory
from finite_memory._registry import plugins

POLICIES = sorted(plugins("policies"))
SECRET = "my passport number is ZX-9913-PLUM"


def _with_secret(memory: Memory) -> Memory:
    """A long conversation with the secret in turn 3's user message and quoted again in turn 9's reply."""
    fill(memory, sessions=3)
    for turn in range(12):
        memory.add("user", f"new topic {turn}: " + (SECRET if turn == 3 else "the garden and the weather"))
        memory.add("assistant", "You said: " + SECRET if turn == 9 else f"reply about topic {turn}")
        memory.context(query="What is my passport number?")  # summaries fold the secret in
    return memory


@pytest.mark.parametrize("name", POLICIES)
def test_forget_leaves_a_memory_equal_to_one_rebuilt_without_the_messages(tmp_path: Path, name: str) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    mem = _with_secret(Memory(name, max_tokens=700, reserve_output=100, system="Be brief.", store=url, session="u"))
    mem.add("user", "one more")  # the policy state (a summary quoting the secret) is stored with this add
    holding = [m.id for m in mem.messages if "ZX-9913" in m.content]
    whole = [t.number for t in mem.turns if any("ZX-9913" in m.content for m in t.messages)][-1]
    partial = [m.id for m in mem.messages if "ZX-9913" in m.content and m.turn != whole]
    assert mem.forget(partial, turns=[whole])  # one partly erased turn, one whole turn
    assert all("ZX-9913" not in m.content for m in mem.messages) and len(holding) == 2
    assert "ZX-9913" not in json.dumps(mem.policy.state())
    rebuilt = Memory(name, max_tokens=700, reserve_output=100, system="Be brief.", store=url, session="u")
    assert rebuilt.messages == mem.messages
    assert [(t.number, t.ids) for t in rebuilt.turns] == [(t.number, t.ids) for t in mem.turns]
    for query in [*questions(sessions=3), "What is my passport number?", "garden", None]:
        if name != "importance":
            same_context(mem, rebuilt, query)
        # importance's scorer counts word frequencies in the order texts arrive, by design ("one
        # scorer serves one conversation"): a memory replayed without the erased texts scores later
        # turns a little differently, so its contexts may differ; both stay free of the erased text
        for each in (mem, rebuilt):
            context = each.context(query)
            assert "ZX-9913" not in str(context.messages) and context.tokens <= each.budget
    assert mem.add("user", "and now?").id == rebuilt.add("assistant", "go on").id - 1  # type: ignore[operator]


def test_erased_text_is_not_in_the_sqlite_file_its_log_or_a_later_checkpoint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    mem = _with_secret(Memory("hybrid", max_tokens=600, store=url, session="u"))
    mem.add("user", "one more")
    mem.save(tmp_path / "before.json")
    files = [tmp_path / "c.db", tmp_path / "c.db-wal"]
    assert any(SECRET.encode() in f.read_bytes() for f in files if f.exists())  # it was there
    mem.forget([m.id for m in mem.messages if "ZX-9913" in m.content])
    mem.save(tmp_path / "after.json")
    mem.add("user", "a message after the erasure")
    for name in ("c.db", "c.db-wal", "c.db-shm", "after.json"):
        path = tmp_path / name
        if path.exists():
            assert b"ZX-9913" not in path.read_bytes(), name
    assert b"ZX-9913" in (tmp_path / "before.json").read_bytes()  # a checkpoint saved earlier is the caller's
    mem.close()
    Memory.load(tmp_path / "after.json")  # the checkpoint written after forget loads


def test_deleting_a_session_leaves_no_text_on_disk(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    keep = Memory(store=url, session="keep")
    keep.add("user", "kept")
    gone = Memory(store=url, session="gone")
    for i in range(50):
        gone.add("user", f"{SECRET} #{i} " + "padding " * 50)
    gone.store.delete("gone")
    for name in ("c.db", "c.db-wal"):
        path = tmp_path / name
        assert not path.exists() or b"ZX-9913" not in path.read_bytes(), name
    assert [m.content for m in Memory(store=url, session="keep").messages] == ["kept"]


def test_forget_takes_tool_partners_system_notes_and_refuses_bad_input(memory: Memory) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    call2 = {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "{}"}}
    memory.add("user", "q")
    memory.add("assistant", "", tool_calls=[call, call2])
    memory.add("tool", "r1", tool_call_id="c1")
    memory.add("tool", "r2", tool_call_id="c2")
    note = memory.add("system", "a pinned note")
    memory.add("assistant", "done")
    assert memory.forget([3]) == [1, 2, 3]  # a result takes its call, and the call its other results
    assert [m.content for m in memory.messages] == ["q", "a pinned note", "done"]
    assert memory.forget([note.id]) == [note.id]  # type: ignore[list-item]
    assert "a pinned note" not in str(memory.context().messages)
    assert memory.forget() == []
    for bad, kind in ((["1"], TypeError), ([True], TypeError), ("12", TypeError), ([99], ValueError)):
        with pytest.raises(kind):
            memory.forget(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="turns \\[7\\]"):
        memory.forget(turns=[7])
    assert [m.content for m in memory.messages] == ["q", "done"]


def test_sessions_forget_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    mem = Memory(store=url, session="u")
    for i in range(4):
        mem.add("user", f"q{i}")
        mem.add("assistant", f"a{i}")
    mem.close()

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "finite_memory", "sessions", "forget", "--store", url, *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            check=False,
        )

    done = cli("u", "--ids", "1", "--turns", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "forgot 3 messages from session 'u' (ids 1, 4, 5)"
    assert [m.content for m in Memory(store=url, session="u").messages] == ["q0", "q1", "a1", "q3", "a3"]
    for args, problem in ((("u",), "say what to forget"), (("u", "--ids", "99"), "no message with ids [99]")):
        failed = cli(*args)
        assert failed.returncode == 2 and problem in failed.stderr and "Traceback" not in failed.stderr
    assert cli("nobody", "--ids", "1").returncode == 2
    assert sqlite3.connect(tmp_path / "c.db").execute("SELECT COUNT(*) FROM messages").fetchone() == (5,)
