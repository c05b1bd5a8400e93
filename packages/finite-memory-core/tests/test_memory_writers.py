"""Several writers on one session (processes sharing a store), and tool results that continue a turn."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from finite_memory import Memory, Message
from finite_memory.cli import build_parser
from finite_memory.stores import StoreConflict
from finite_memory.stores.sqlite import SQLiteStore


def pair(tmp_path: Path) -> tuple[Memory, Memory]:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    return Memory(store=url, session="s"), Memory(store=url, session="s")


def test_refresh_reads_what_another_writer_added(tmp_path: Path) -> None:
    mine, theirs = pair(tmp_path)
    mine.add("user", "one")
    theirs.refresh()
    assert [m.content for m in theirs.messages] == ["one"]
    theirs.refresh()  # nothing new: nothing changes
    assert [m.content for m in theirs.messages] == ["one"]
    theirs.extend([Message("assistant", "two"), Message("user", "three")])
    mine.refresh()
    assert [m.content for m in mine.context().messages] == ["one", "two", "three"]
    assert [t.number for t in mine.turns] == [0, 1]


def test_extend_if_unchanged_refuses_a_batch_built_on_a_stale_view(tmp_path: Path) -> None:
    mine, theirs = pair(tmp_path)
    mine.add("user", "one")
    theirs.refresh()
    theirs.add("assistant", "their reply")
    with pytest.raises(StoreConflict):
        mine.extend([Message("assistant", "my reply")], if_unchanged=True)
    # nothing of the refused batch is kept, and the memory now holds what the other writer added
    assert [m.content for m in mine.messages] == ["one", "their reply"]
    assert mine.extend([Message("user", "two")], if_unchanged=True)[0].id == 2
    store = SQLiteStore(f"sqlite:///{tmp_path / 'shared.db'}")
    assert [m.content for m in store.messages("s")] == ["one", "their reply", "two"]
    store.close()


def test_extend_without_the_option_still_stamps_after_the_other_writer(tmp_path: Path) -> None:
    mine, theirs = pair(tmp_path)
    mine.add("user", "one")
    theirs.refresh()
    theirs.add("assistant", "a")
    assert mine.extend([Message("assistant", "b")])[0].id == 2


CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{}"}}


def test_pending_tool_results_continue_the_newest_turn_whole() -> None:
    memory = Memory("sliding", max_tokens=200, reserve_output=0)
    for i in range(30):
        memory.add("user", f"old question number {i} with some words in it")
        memory.add("assistant", f"old answer number {i} with some words in it")
    memory.add("user", "What's the weather?")
    memory.add("assistant", "", tool_calls=[CALL])
    result = Message("tool", "18 C, sunny", tool_call_id="call_1")
    context = memory._build("What's the weather?", [result])
    assert [m.role for m in context.messages[-3:]] == ["user", "assistant", "tool"]
    assert context.messages[-2].tool_calls and context.tokens <= memory.budget
    assert len(memory.turns) == 31 and len(memory) == 62  # building archived nothing
    assert memory.extend([result, Message("assistant", "Sunny.")])[0].turn == 30


def test_plugin_commands_join_the_command_line_and_a_broken_one_is_skipped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        sub.add_parser("hello").set_defaults(func=lambda args: 0)

    good = EntryPoint("hello", "x:add_parser", "finite_memory.commands")
    broken = EntryPoint("broken", "no_such_module_here:add_parser", "finite_memory.commands")
    shadow = EntryPoint("chat", "x:add_parser", "finite_memory.commands")
    monkeypatch.setattr(
        EntryPoint, "load", lambda self: add_parser if self.name != "broken" else __import__(self.module)
    )
    monkeypatch.setattr(
        "finite_memory.cli.installed_plugins", lambda kind: {"hello": good, "broken": broken, "chat": shadow}
    )
    parser = build_parser()
    assert parser.parse_args(["hello"]).command == "hello"
    assert parser.parse_args(["chat", "--backend", "echo:x"]).backend == "echo:x"  # a built-in is never replaced
    assert "command 'broken'" in capsys.readouterr().err
