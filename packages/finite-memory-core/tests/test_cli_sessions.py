"""``finite-memory sessions``: the rough edges (mistyped paths, hostile names, bad counts)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from finite_memory import Memory
from finite_memory.cli import main


def test_a_mistyped_store_path_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for action in (["list"], ["show", "s"], ["delete", "s"], ["export", "s", str(tmp_path / "out.json")]):
        typo = tmp_path / "chatz.db"
        assert main(["sessions", *action, "--store", f"sqlite:///{typo}"]) == 2
        err = capsys.readouterr().err
        assert f"error: no store at sqlite:///{typo} (a mistyped path?); sessions never creates one" in err
        assert not typo.exists()
    assert list(tmp_path.iterdir()) == []


def test_list_on_the_default_store_before_any_chat_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    monkeypatch.setattr(sys, "platform", "linux")
    assert main(["sessions", "list"]) == 0
    default = tmp_path / "finite-memory" / "chats.db"
    assert (
        capsys.readouterr().out
        == f"(no sessions: sqlite:///{default} does not exist yet; finite-memory chat creates it)\n"
    )
    assert not (tmp_path / "finite-memory").exists()


def test_session_names_cannot_forge_lines_of_the_listing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path}/chats.db"
    names = ["plain", "evil\nroot\t999 messages", "\x1b[2J\x1b]0;title\x07wiped", "tab\there"]
    for name in names:
        with Memory(store=store, session=name) as memory:
            memory.add("user", "hi")
    assert main(["sessions", "list", "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(names), lines
    assert sorted(lines) == sorted(
        [
            "plain\t1 messages",
            "evil\\x0aroot\\x09999 messages\t1 messages",
            "\\x1b[2J\\x1b]0;title\\x07wiped\t1 messages",
            "tab\\x09here\t1 messages",
        ]
    )
    assert main(["sessions", "delete", "--store", store, "evil\nroot\t999 messages"]) == 0
    assert "deleted session 'evil\\nroot\\t999 messages' (1 messages)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["-1", "0", "x"])
def test_last_takes_a_positive_count(value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["sessions", "show", "s", "--last", value, "--store", f"sqlite:///{tmp_path}/c.db"])
    assert exit_info.value.code == 2
    assert "argument --last: must be an integer" in capsys.readouterr().err


def test_show_last_and_escapes_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path}/chats.db"
    with Memory(store=store, session="s") as memory:
        for text in ("one", "two", "three\x1b[31m red\nsecond line"):
            memory.add("user", text)
    assert main(["sessions", "show", "s", "--last", "2", "--store", store]) == 0
    piped = capsys.readouterr().out
    assert piped == "#1 turn 1 user: two\n#2 turn 2 user: three\x1b[31m red\nsecond line\n"

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stdout", screen)
    assert main(["sessions", "show", "s", "--last", "1", "--store", store]) == 0
    assert screen.getvalue() == "#2 turn 2 user: three\\x1b[31m red\nsecond line\n", "newlines stay, escapes do not"


def test_export_errors_name_the_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path}/chats.db"
    with Memory(store=store, session="s") as memory:
        memory.add("user", "hi")
    out = str(tmp_path / "out.json")
    assert main(["sessions", "export", "s", out, "--store", store, "--policy", "nope"]) == 2
    assert "argument --policy: unknown policy 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["sessions", "export", "s", out, "--store", store, "--max-tokens", "0"])
    assert "argument --max-tokens: must be an integer >= 33, got 0" in capsys.readouterr().err
