"""A real headless Chromium driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

Stdlib only: commands go to the browser's fd 3 and answers come from its fd 4, as
NUL-terminated JSON. Every request a page makes shows as a DevTools network event of its
session. All of the browser's traffic goes to a proxy on 127.0.0.1 that records each
request line and answers nothing, so nothing leaves the machine (the browser's own
background requests, sign-in and update checks, end there too).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """The browser's executable, if one is installed."""
    return next((path for name in NAMES if (path := shutil.which(name))), None)


@dataclass
class PageRun:
    """What happened while a page loaded: its console errors, requests, and what a script returned."""

    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    result: Any = None
    screenshot: bytes = b""


class _SinkProxy:
    """A listening socket on 127.0.0.1 that records each connection's first line and closes it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(1)
            try:
                self.seen.append(conn.recv(200).split(b"\r\n")[0].decode("latin-1"))
            except OSError:
                self.seen.append("?")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


class Chromium:
    """One headless browser process; use as a context manager, then :meth:`load`."""

    def __init__(self, executable: str, profile: Path, timeout: float = 60.0) -> None:
        import fcntl  # POSIX only, like the pipe the browser is driven through

        self.timeout = timeout
        self.proxy = _SinkProxy()
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        # The browser wants the pipe ends at fds 3 and 4: move them above 9 first, so the dup2 calls
        # in the child cannot overwrite one with the other.
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_read, from_browser_write)]
        os.close(to_browser_read)
        os.close(from_browser_write)

        def ends_at_3_and_4() -> None:
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        command = [
            executable,
            "--headless",
            "--no-sandbox",  # the tests may run as root, where the sandbox refuses to start
            "--disable-gpu",
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--proxy-server=http://127.0.0.1:{self.proxy.port}",
            "--proxy-bypass-list=<-loopback>",  # loopback goes to the proxy too
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-extensions",
            "--disable-sync",
            "--disable-breakpad",
            "--disable-client-side-phishing-detection",
            "--disable-domain-reliability",
            "--disable-field-trial-config",
            "--metrics-recording-only",
            "--no-pings",
            "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,Translate,MediaRouter,"
            "SearchEnginePreconnector,SearchEnginePreconnect2,AutofillServerCommunication",
            "--hide-scrollbars",
            "--mute-audio",
            "--window-size=1280,900",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, *high),
            preexec_fn=ends_at_3_and_4,
        )
        for fd in high:
            os.close(fd)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self._send("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        os.close(self._to_browser)
        os.close(self._from_browser)
        self.proxy.close()

    def load(self, page: Path, script: str, screenshot: bool = False) -> PageRun:
        """Open ``page`` in a new tab, wait for its load event, run ``script``, and report."""
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable", session=session)
        self._events.clear()
        self.call("Page.navigate", session=session, url=page.as_uri())
        self._wait_for("Page.loadEventFired", session)
        time.sleep(0.3)  # late console messages and requests after the load event
        run = PageRun()
        run.result = self.call(
            "Runtime.evaluate", session=session, expression=script, returnByValue=True, awaitPromise=True
        )["result"].get("value")
        if screenshot:
            size = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
            shot = self.call(
                "Page.captureScreenshot", session=session, format="png", clip=clip, captureBeyondViewport=True
            )
            run.screenshot = base64.b64decode(shot["data"])
        self._drain(0.2)
        for event in self._events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
                run.errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                run.errors.append(str(params.get("exceptionDetails", {}).get("text")))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") in ("error", "warning"):
                run.errors.append(str(params["entry"].get("text")))
            elif method == "Network.requestWillBeSent":
                url = params.get("request", {}).get("url", "")
                if url != page.as_uri():
                    run.requests.append(url)
        self.call("Target.closeTarget", targetId=target)
        return run

    # --- the protocol -------------------------------------------------------------------------------------

    def call(self, method: str, session: str | None = None, **params: Any) -> Any:
        """Send one command and return its result; an error answer raises ``RuntimeError``."""
        ident = self._send(method, session, **params)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for message in self._read(deadline - time.monotonic()):
                if message.get("id") == ident:
                    if "error" in message:
                        raise RuntimeError(f"{method}: {message['error']}")
                    return message.get("result", {})
                self._events.append(message)
        raise TimeoutError(f"no answer to {method} in {self.timeout} s")

    def _send(self, method: str, session: str | None = None, **params: Any) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        return self._next_id

    def _wait_for(self, method: str, session: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if any(e.get("method") == method and e.get("sessionId") == session for e in self._events):
                return
            self._events.extend(self._read(deadline - time.monotonic()))
        raise TimeoutError(f"no {method} in {self.timeout} s")

    def _drain(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._events.extend(self._read(left))

    def _read(self, seconds: float) -> list[dict[str, Any]]:
        ready, _, _ = select.select([self._from_browser], [], [], max(0.0, seconds))
        if not ready:
            return []
        chunk = os.read(self._from_browser, 1 << 20)
        if not chunk:
            raise RuntimeError(f"the browser closed its DevTools pipe (exit status {self.process.poll()})")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        return [json.loads(m) for m in messages if m]
