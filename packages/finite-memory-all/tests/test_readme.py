"""Every code block of the README runs as written.

Python blocks run in order in one namespace (each builds on the ones before, as a reader
goes), in a temporary folder, with the OpenAI backend pointed at a loopback fake server
(``OPENAI_BASE_URL``), ``URL`` and ``KEY`` (the README's placeholders for a server's API root
and key) naming it too, and ``$FINITE_MEMORY_SUMMARY_MODEL`` a tiny local model. The
``finite-memory`` command lines run in a shell in the same folder, against the same
server. ``pip`` lines are the Install section's, run in fresh venvs by ``nox -s
tests_install`` (test_install.py); ``nox`` lines are the test runner itself.
"""

from __future__ import annotations

import ast
import asyncio
import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stdout
from pathlib import Path

import httpx
import pytest
from _api_server import KEY, FakeLLMServer
from _readme import blocks, shell_lines

from finite_memory.eval.synthetic import generate_dataset


def kind(line: str) -> str:
    command = line.split()[0]
    if command == "finite-memory":
        return "serve" if line.split()[1:2] == ["serve"] else "cli"
    if line.startswith(("nox ", "pip install nox && nox ")):
        return "runner"
    if command == "pip":
        return "install"
    return "unknown"


def test_every_shell_line_is_run_by_some_test() -> None:
    lines = shell_lines()
    assert lines, "the README has shell blocks"
    for number, line in lines:
        assert kind(line) != "unknown", f"README line {number}: no test runs {line!r}"
    installs = [(n, line) for n, line in lines if kind(line) == "install"]
    assert installs and installs == shell_lines("Install"), "pip lines belong in the Install section (tests_install)"


@contextmanager
def serving(line: str, env: dict[str, str]) -> Iterator[str]:
    """A README ``finite-memory serve`` line running in the background, once it answers ``/health``."""
    words = line.split()
    port = int(words[words.index("--port") + 1]) if "--port" in words else 8080
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        ["bash", "-c", f"exec {line}"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"{line!r} exited: {process.stderr.read().decode()[-2000:]}"  # type: ignore[union-attr]
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{line!r} did not answer /health within 60 s"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(20)


@pytest.fixture
def reader_folder(tmp_path: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A temporary folder and the environment a reader would have, with every server on 127.0.0.1."""
    from finite_memory_hf.testing import build_tiny_model

    model = build_tiny_model(tmp_path / "tiny-model")
    env = {
        "OPENAI_BASE_URL": server.url + "/v1",
        "OPENAI_API_KEY": KEY,
        "FINITE_MEMORY_SUMMARY_MODEL": str(model),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "HF_HUB_OFFLINE": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    work = tmp_path / "reader"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "locomo.json").write_text(json.dumps(generate_dataset(2)))  # a file in LoCoMo's format
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def test_the_readme_runs_as_written(reader_folder: dict[str, str], server: FakeLLMServer) -> None:
    namespace: dict[str, object] = {"URL": server.url + "/v1", "KEY": KEY, "__name__": "__readme__"}
    printed = io.StringIO()
    python = [b for b in blocks() if b.language == "python"]
    assert len(python) >= 5
    # the proxy the Serving section's client talks to: its first command with the default upstream
    proxy = next(line for _, line in shell_lines() if kind(line) == "serve" and "--base-url" not in line)
    try:
        with serving(proxy, reader_folder):
            for block in python:
                code = compile(block.code, f"README.md:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
                with redirect_stdout(printed):
                    result = eval(code, namespace)  # returns a coroutine when the block awaits at top level
                    if asyncio.iscoroutine(result):
                        asyncio.run(result)
    finally:  # what the examples opened (memories on SQLite, chats with HTTP clients) is closed here
        for value in namespace.values():
            if type(value).__module__.startswith("finite_memory") and callable(getattr(value, "close", None)):
                value.close()
    assert "echo: Where do I live?" in printed.getvalue(), "the chat example talked to the server"
    assert Path("chat.json").is_file() and Path("chats.db").is_file()

    ran = []
    for number, line in shell_lines():
        if kind(line) == "serve":
            with serving(line, reader_folder):  # starts and answers; its clients are the Python blocks
                ran.append(line)
        if kind(line) != "cli":
            continue
        done = subprocess.run(
            ["bash", "-c", line],
            input="Where do I live?\n",
            capture_output=True,
            text=True,
            env=reader_folder,
            timeout=300,
        )
        assert done.returncode == 0, f"README line {number}: {line}\n{done.stdout}\n{done.stderr}"
        ran.append(line)
    assert any(" chat " in line for line in ran) and any(" eval " in line for line in ran)
    for produced in ("report.html", "diff.html"):
        if any(produced in line for line in ran):
            assert Path(produced).stat().st_size > 10_000, produced
