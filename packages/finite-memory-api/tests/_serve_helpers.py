"""A real ``finite-memory serve`` proxy for tests: in a thread of the test process, or as a subprocess.

Both listen on 127.0.0.1 at a port the OS picks, in front of the fake upstream of
``_api_server.py`` or a real ``transformers serve``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from _api_server import FakeLLMServer, _Handler
from _transformers_serve import free_port

from finite_memory_api.serve import ServeConfig, create_app

#: The key the proxy sends upstream in these tests; it must never reach a client or a log.
UPSTREAM_KEY = "sk-upstream-9b1d3f5a7c9e1b3d5f7a9c1e3b5d7f9a"


class ServeUpstream(FakeLLMServer):
    """The fake upstream of ``_api_server.py``, plus ``GET /v1/models`` and, when ``cached`` is set,
    that many cached prompt tokens in each whole reply's usage."""

    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _ServeHandler
        self.cached: int | None = None


class _ServeHandler(_Handler):
    server: ServeUpstream

    def do_GET(self) -> None:
        if self.path == "/v1/models":
            return self._send_json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
        self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        if self.server.cached is not None and isinstance(data, dict) and "usage" in data:
            data["usage"]["prompt_tokens_details"] = {"cached_tokens": self.server.cached}
        super()._send_json(status, data, headers)


class ThreadProxy:
    """The proxy app under uvicorn in a background thread, for one test."""

    def __init__(self, upstream_url: str, **config: Any) -> None:
        options: dict[str, Any] = {
            "backend": "openai:test-model",
            "base_url": upstream_url + "/v1",
            "max_tokens": 2048,
            "policy": "sliding",
            "upstream_retries": 0,
            **config,
        }
        self.config = ServeConfig(**options)
        self.app = create_app(self.config)
        self.proxy = self.app.state.proxy
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # accepted sockets inherit it: asyncio's loop does not set it on sockets handed to uvicorn,
        # and the headers and body of a response are two writes (Nagle + delayed ACK: 40 ms)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self._sock]))

    def __enter__(self) -> ThreadProxy:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the proxy did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._sock.close()


class ProcessProxy:
    """``finite-memory serve`` as a real subprocess (killable with ``kill -9``)."""

    def __init__(self, upstream_url: str, store: str, *extra: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.args = [
            sys.executable,
            "-m",
            "finite_memory",
            "serve",
            "--backend",
            "openai:test-model",
            "--base-url",
            upstream_url + "/v1",
            "--policy",
            "sliding",
            "--max-tokens",
            "2048",
            "--store",
            store,
            "--port",
            str(self.port),
            "--upstream-retries",
            "0",
            *extra,
        ]
        self.env = {**os.environ, "OPENAI_API_KEY": UPSTREAM_KEY, **(env or {})}
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ProcessProxy:
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the proxy exited: {self.process.stdout.read()}")  # type: ignore[union-attr]
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        self.kill()
        raise RuntimeError("the proxy did not answer /health in time")

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> str:
        """SIGTERM, then its output."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        return self.process.stdout.read() if self.process.stdout else ""  # type: ignore[union-attr]

    def __enter__(self) -> ProcessProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def session_messages(store_path: Path, session: str) -> list[tuple[str, str]]:
    """(role, content) of every message a SQLite store holds for ``session``."""
    from finite_memory.stores.sqlite import SQLiteStore

    store = SQLiteStore(f"sqlite:///{store_path}")
    try:
        return [(m.role, m.content) for m in store.messages(session)]
    finally:
        store.close()
