"""``finite-memory chat`` with the deterministic echo backend and a real SQLite store."""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import pytest

from finite_memory import BackendError, Chat, Memory
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


def test_default_store_is_in_the_user_data_folder_printed_and_shared_with_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setattr(sys, "platform", "linux")
    path = tmp_path / "data" / "finite-memory" / "chats.db"
    out = chat_cli(monkeypatch, capsys, "hi\n", "--session", "mine")
    assert path.is_file()
    assert f"session 'mine' (0 messages) in sqlite:///{path}" in out
    assert main(["sessions", "list"]) == 0
    listed = capsys.readouterr()
    assert listed.out == "mine\t2 messages\n" and f"store: sqlite:///{path}" in listed.err
    for command in ("chat", "sessions list"):
        with pytest.raises(SystemExit):
            main([*command.split(), "--help"])
        assert f"(default:sqlite:///{path})" in re.sub(r"\s+", "", capsys.readouterr().out)


def loop_args(**flags: object) -> argparse.Namespace:
    return argparse.Namespace(**{"stats": False, "stream": True, "backend": "echo:test", "base_url": None, **flags})


def test_a_failed_turn_is_reported_and_not_saved_and_sets_the_exit_status() -> None:
    chat = Chat(EchoBackend(fail_after=1), Memory(max_tokens=256))
    out = io.StringIO()
    assert _loop(chat, loop_args(stats=True), io.StringIO("does not work\n"), out) == 1, (
        "the session ended on a failure"
    )
    assert "[error: EchoBackend was told to fail after 1 pieces; this turn was not saved]" in out.getvalue()
    assert len(chat.memory) == 0
    assert _loop(chat, loop_args(), io.StringIO("fails\n/quit\n"), io.StringIO()) == 1
    chat.backend.fail_after = None  # type: ignore[attr-defined]
    assert _loop(chat, loop_args(), io.StringIO("works now\n"), io.StringIO()) == 0


def test_a_failure_followed_by_a_good_turn_exits_zero() -> None:
    backend = EchoBackend()
    chat = Chat(backend, Memory(max_tokens=256))
    failing = iter([True, False])

    def stream(messages: object, **options: object) -> object:
        if next(failing):
            raise BackendError("the server is down", status=503)
        return EchoBackend.stream(backend, messages, **options)  # type: ignore[arg-type]

    backend.stream = stream  # type: ignore[method-assign,assignment]
    out = io.StringIO()
    assert _loop(chat, loop_args(), io.StringIO("first\nsecond\n"), out) == 0
    assert "[error: the server is down; this turn was not saved]" in out.getvalue()
    assert "ai> echo: second" in out.getvalue()


def test_an_unknown_command_says_so() -> None:
    chat = Chat(EchoBackend(), Memory(max_tokens=256))
    out = io.StringIO()
    assert _loop(chat, loop_args(), io.StringIO("/stat\n/help\n"), out) == 0
    text = out.getvalue()
    assert text.startswith("unknown command '/stat'\ncommands:")
    assert text.count("commands:") == 2, "/help prints the list without calling itself unknown"
    assert "unknown command" not in text.split("commands:", 2)[2]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_control_characters_from_the_model_are_escaped_on_a_terminal_only() -> None:
    hostile = "\x1b]0;owned\x07 \x1b[2J\x08fake\x9b31m"
    for stream in (True, False):
        chat = Chat(EchoBackend(), Memory(max_tokens=256))
        terminal = FakeTerminal()
        assert _loop(chat, loop_args(stream=stream), io.StringIO(hostile + "\n"), terminal) == 0
        shown = terminal.getvalue()
        assert "\x1b" not in shown and "\x07" not in shown and "\x08" not in shown and "\x9b" not in shown
        assert "echo: \\x1b]0;owned\\x07 \\x1b[2J\\x08fake\\x9b31m\n" in shown
        assert chat.memory.messages[-1].content == "echo: " + hostile, "the archive keeps the text as it came"
    piped = io.StringIO()
    assert _loop(Chat(EchoBackend(), Memory(max_tokens=256)), loop_args(), io.StringIO("\x1b[1mbold\n"), piped) == 0
    assert "echo: \x1b[1mbold\n" in piped.getvalue(), "a pipe gets the text as it is"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budget", "-4"], "argument --budget: must be an integer >= 33, got -4"),
        (["--reserve", "-1"], "argument --reserve: must be an integer >= 0, got -1"),
        (["--session", " "], "argument --session: must not be empty"),
    ],
)
def test_bad_numbers_are_refused_naming_the_flag(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--backend", "echo:x", "--store", f"sqlite:///{tmp_path}/c.db", *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budget", "100", "--reserve", "200"], "--reserve (200) must be smaller than --budget (100)"),
        (["--budget", "100", "--reserve", "90"], "--budget - --reserve must leave at least 32 tokens"),
        (["--policy", "nope"], "argument --policy: unknown policy 'nope'; installed policies:"),
    ],
)
def test_errors_of_the_memory_name_the_flags(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["chat", "--backend", "echo:x", "--store", f"sqlite:///{tmp_path}/c.db", *flags]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "max_tokens" not in err and "reserve_output" not in err


def test_an_unknown_backend_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chat", "--backend", "nope:model", "--store", f"sqlite:///{tmp_path}/c.db"]) == 2
    assert "finite-memory chat: error: argument --backend: unknown backend 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize(("scheme", "variable"), [("openai", "OPENAI_API_KEY"), ("anthropic", "ANTHROPIC_API_KEY")])
def test_a_hosted_api_without_its_key_fails_before_any_request(
    scheme: str, variable: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    import finite_memory.cli.chat as command

    monkeypatch.setattr(command, "load_backend", lambda *a, **k: pytest.fail("no backend may be built"))
    store = tmp_path / "c.db"
    assert main(["chat", "--backend", f"{scheme}:some-model", "--store", f"sqlite:///{store}"]) == 2
    err = capsys.readouterr().err
    assert (
        f"argument --backend: {scheme}:some-model talks to {scheme}'s hosted API, which needs a key: set {variable}"
        in err
    )
    assert not store.exists(), "nothing is opened before the check"


def test_a_404_hints_at_the_base_url_shape() -> None:
    from finite_memory.cli.chat import _url_hint

    not_found = BackendError("HTTP 404", status=404)
    hint = _url_hint(not_found, loop_args(backend="openai:m", base_url="http://127.0.0.1:8000"))
    assert hint == " (the openai backend's base URL is the API root including /v1: try http://127.0.0.1:8000/v1)"
    hint = _url_hint(not_found, loop_args(backend="anthropic:m", base_url="http://127.0.0.1:8000/v1/"))
    assert hint == " (the anthropic backend's base URL is the server root without /v1: try http://127.0.0.1:8000)"
    assert _url_hint(not_found, loop_args(backend="openai:m", base_url="http://127.0.0.1:8000/v1")) == ""
    assert _url_hint(BackendError("HTTP 500", status=500), loop_args(backend="openai:m", base_url="http://h")) == ""


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
