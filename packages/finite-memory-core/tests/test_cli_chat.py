"""``finite-memory chat`` with the deterministic echo backend and a real SQLite store."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from finite_memory import Chat, Memory
from finite_memory.cli import main
from finite_memory.cli.chat import _loop
from finite_memory.testing import EchoBackend


def chat_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *args: str) -> str:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    assert main(["chat", "--backend", "echo:test", *args]) == 0
    return capsys.readouterr().out


def test_chat_streams_shows_stats_and_persists_the_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path}/chats.db"
    out = chat_cli(
        monkeypatch,
        capsys,
        "/stats\nhello there\n/stats\n\n/help\nsecond turn\n/quit\nnot read\n",
        "--store",
        store,
        "--session",
        "s1",
    )
    assert "echo:test, session 's1' (0 messages)" in out
    assert "no turn yet" in out
    assert "ai> echo: hello there\n" in out and "ai> echo: second turn\n" in out
    assert "not read" not in out
    assert "[context " in out and "archive 2 messages in 1 turns" in out and "policy sliding" in out
    assert "/stats on|off" in out
    again = chat_cli(monkeypatch, capsys, "third\n", "--store", store, "--session", "s1", "--stats", "--no-stream")
    assert "session 's1' (4 messages)" in again, "the session's memory persists in the store"
    assert "archive 6 messages in 3 turns" in again
    with Memory(store=store, session="s1") as memory:
        assert [m.content for m in memory.messages][-2:] == ["third", "echo: third"]
    other = chat_cli(monkeypatch, capsys, "", "--store", store, "--session", "s2")
    assert "session 's2' (0 messages)" in other


def test_stats_can_be_switched_on_and_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = chat_cli(monkeypatch, capsys, "/stats on\none\n/stats off\ntwo\n", "--store", f"sqlite:///{tmp_path}/c.db")
    assert out.count("[context ") == 1


def test_default_store_is_in_the_user_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "platform", "linux")
    chat_cli(monkeypatch, capsys, "hi\n")
    assert (tmp_path / "data" / "finite-memory" / "chats.db").is_file()


def test_a_failed_turn_is_reported_and_not_saved() -> None:
    chat = Chat(EchoBackend(fail_after=1), Memory(max_tokens=256))
    out = io.StringIO()
    args = argparse.Namespace(stats=True, stream=True)
    assert _loop(chat, args, io.StringIO("does not work\n"), out) == 0
    assert "[error: EchoBackend was told to fail after 1 pieces; this turn was not saved]" in out.getvalue()
    assert len(chat.memory) == 0


def test_an_unknown_backend_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--backend", "nope:model", "--store", f"sqlite:///{tmp_path}/c.db"]) == 2
    assert "unknown backend 'nope'" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX pseudo-terminal")
def test_chat_in_a_terminal_prompts_and_ends_on_ctrl_d(tmp_path: Path) -> None:
    import os
    import select
    import subprocess

    leader, follower = os.openpty()
    command = [sys.executable, "-m", "finite_memory", "chat", "--backend", "echo:tty"]
    proc = subprocess.Popen(
        [*command, "--store", f"sqlite:///{tmp_path}/tty.db"], stdin=follower, stdout=follower, stderr=follower
    )
    os.close(follower)
    seen = b""

    def read_until(marker: bytes, times: int = 1) -> None:
        nonlocal seen
        while seen.count(marker) < times:
            ready, _, _ = select.select([leader], [], [], 30)
            assert ready, f"no {marker!r} in {seen!r}"
            seen += os.read(leader, 4096)

    try:
        read_until(b"you> ")
        os.write(leader, b"hello from a terminal\n")
        read_until(b"echo: hello from a terminal")
        read_until(b"you> ", times=2)
        os.write(leader, b"\x04")  # Ctrl-D at the start of a line: end of input
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        os.close(leader)
