"""``finite-memory chat`` against the loopback server, in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _api_server import KEY, FakeLLMServer

from finite_memory import Memory


def chat(server: FakeLLMServer, store: str, stdin: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    command = [sys.executable, "-m", "finite_memory", "chat", "--backend", "openai:test-model"]
    command += ["--base-url", server.url + "/v1", "--store", store, "--session", "cli", *extra]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, timeout=60)


def test_cli_chat_streams_reports_errors_and_keeps_its_memory(server: FakeLLMServer, tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path}/chats.db"
    server.faults = ["", "401"]
    result = chat(server, store, "hello there\nthis one fails\n/stats\nafter the failure\n", "--budget", "2048")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "openai:test-model, session 'cli' (0 messages)" in out
    assert "ai> echo: hello there\n" in out and "ai> echo: after the failure\n" in out
    assert "[error: openai:test-model: HTTP 401" in out and "Incorrect API key provided: ***" in out
    assert KEY not in out + result.stderr
    assert "server counted" in out and "context " in out
    assert "prompt cache 0 cached /" in out and "this session (0% cached)" in out, "the cache figures in /stats"
    assert server.requests[0]["body"]["stream"] is True
    with Memory(store=store, session="cli") as memory:
        contents = [m.content for m in memory.messages]
    assert contents == ["hello there", "echo: hello there", "after the failure", "echo: after the failure"]
    again = chat(server, store, "once more\n")
    assert "session 'cli' (4 messages)" in again.stdout
    sent = server.requests[-1]["body"]["messages"]
    assert [m["content"] for m in sent][:2] == ["hello there", "echo: hello there"], "the history goes to the model"
    third = chat(server, store, "one\ntwo\n/stats\n")
    assert "this session (" in third.stdout and "(0% cached)" not in third.stdout, "turn two reused turn one"


def test_cli_chat_exits_1_when_the_session_ends_on_a_failed_turn(server: FakeLLMServer, tmp_path: Path) -> None:
    server.faults = ["401"]
    result = chat(server, f"sqlite:///{tmp_path}/chats.db", "this one fails\n")
    assert result.returncode == 1
    assert "[error: openai:test-model: HTTP 401" in result.stdout
    assert "the session ended on a failed turn" in result.stderr


def test_a_base_url_without_v1_gets_a_hint(server: FakeLLMServer, tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_API_KEY": KEY}
    command = [
        sys.executable,
        "-m",
        "finite_memory",
        "chat",
        "--backend",
        "openai:test-model",
        "--base-url",
        server.url,
    ]
    command += ["--store", f"sqlite:///{tmp_path}/chats.db"]
    result = subprocess.run(command, input="hello\n", capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 1
    assert "HTTP 404" in result.stdout
    assert f"(the openai backend's base URL is the API root including /v1: try {server.url}/v1)" in result.stdout
