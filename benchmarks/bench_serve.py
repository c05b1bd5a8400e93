"""``finite-memory serve`` figures: latency added over calling the upstream directly, and tokens sent per turn.

Three processes on 127.0.0.1:

- a model-like upstream (this script with ``--upstream``): a reply is 8 to 24 tokens (16
  on average), the first after ``--first-ms`` (+-20 %), then one every ``--token-ms``; a
  whole reply comes when its last token would (as for a real model, replies differ);
- the real ``finite-memory serve`` command, one process, on a SQLite store in WAL mode
  with ``synchronous=normal`` (the default store's setting), policy ``--policy``;
- this script as the client, one keep-alive connection per session (a plain asyncio
  HTTP/1.1 client, so the load generator takes as little of the 2 cores as it can).

Every session starts with 10,000 archived messages. Each round runs every session's
turns through the proxy, then as many direct calls to the upstream carrying the very
prompt the proxy sends for that session (its context plus the new message): the two
alternate, so the machine's noise hits both alike. Sessions run at once: 1, then 50 with
no pause between a session's turns (50 turns always in flight, the heaviest load 50
sessions can make), then 50 with a user's pause between turns (``--think-ms``, 1 s on
average). "Added" is the proxy's latency
percentile minus the direct one, for whole replies and for the time to the first
streamed token. At the end the store is read back: every answered turn must be there
exactly once, in order, and nothing else.

    python benchmarks/bench_serve.py            # 1 and 50 concurrent sessions (about 4 minutes)
    python benchmarks/bench_serve.py --quick    # fewer turns
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

from _bench import verdict

from finite_memory import Memory, Message
from finite_memory._provider_messages import to_openai  # the wire form the proxy sends, for a whole archive
from finite_memory.stores.sqlite import SQLiteStore

ARCHIVE = 10_000
SESSIONS = (1, 50)
MAX_TOKENS, RESERVE = 4096, 512
TOKENS = 16
P50_TARGET_MS, P99_TARGET_MS = 5.0, 25.0

# -- the upstream: a model-like OpenAI server ------------------------------------------------------


def prompt_tokens(messages: list[dict[str, Any]]) -> int:
    """The upstream's token count of a prompt: the same rule for every prompt of the run."""
    return 3 + sum(4 + len(m.get("content") or "") // 4 for m in messages)


async def upstream_server(port: int, first_ms: float, token_ms: float) -> None:
    def chunk(data: dict[str, Any]) -> bytes:
        raw = f"data: {json.dumps(data)}\n\n".encode()
        return f"{len(raw):x}\r\n".encode() + raw + b"\r\n"

    async def reply(writer: asyncio.StreamWriter, body: dict[str, Any]) -> None:
        # the reply's length and first-token time follow from the request's "user" (a session and a
        # turn of a round): the proxy's round and the direct round that follows draw the same ones
        draw = random.Random(zlib.crc32(str(body.get("user")).encode()))
        words = [f"w{i} " for i in range(draw.randint(TOKENS // 2, TOKENS * 3 // 2))]
        first = first_ms * draw.uniform(0.8, 1.2)
        usage = {"prompt_tokens": prompt_tokens(body["messages"]), "completion_tokens": len(words)}
        usage["total_tokens"] = usage["prompt_tokens"] + len(words)
        if not body.get("stream"):
            await asyncio.sleep((first + token_ms * (len(words) - 1)) / 1000)
            choice = {"index": 0, "message": {"role": "assistant", "content": "".join(words)}, "finish_reason": "stop"}
            raw = json.dumps({"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(raw))
            writer.write(raw)
            return
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        await asyncio.sleep(first / 1000)
        for i, word in enumerate(words):
            if i:
                await asyncio.sleep(token_ms / 1000)
            writer.write(chunk({"id": "x", "choices": [{"index": 0, "delta": {"content": word}}]}))
        writer.write(chunk({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        writer.write(chunk({"id": "x", "choices": [], "usage": usage}))
        writer.write(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = _content_length(head)
                body = await reader.readexactly(length)
                if head.startswith(b"GET"):
                    raw = b'{"object":"list","data":[{"id":"bench-model","object":"model"}]}'
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(raw), raw))
                else:
                    await reply(writer, json.loads(body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


# -- the client: one plain keep-alive HTTP/1.1 connection per session --------------------------------


class Connection:
    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[float, bytes]:
        """POST /v1/chat/completions: (seconds to the first streamed token, or to the whole reply; the body)."""
        if self.writer is None or self.reader is None or self.reader.at_eof():  # the server closed an idle one
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.reader is not None
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        start = time.perf_counter()
        self.writer.write(
            f"POST /v1/chat/completions HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n{extra}\r\n".encode()
            + body
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"HTTP error: {head[:200]!r} {await self.reader.read(500)!r}")
        if b"chunked" not in head.lower():
            body = await self.reader.readexactly(_content_length(head))
            return time.perf_counter() - start, body
        first, parts = 0.0, []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            data = await self.reader.readexactly(size + 2)
            if not size:
                return first, b"".join(parts)
            if not first and (b'"content":"w' in data or b'"content": "w' in data):
                first = time.perf_counter() - start
            parts.append(data[:-2])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Load:
    """Turns of many sessions at once, through the proxy or straight to the upstream."""

    def __init__(self, proxy_port: int, upstream_port: int, store: Path, policy: str) -> None:
        self.ports = {"proxy": proxy_port, "direct": upstream_port}
        self.store = store
        self.policy = policy
        self.connections: dict[tuple[str, str], Connection] = {}
        self.answered: dict[str, list[str]] = {}  # session -> user texts answered, in order
        self.prompt_tokens: list[int] = []
        self.contexts: dict[str, list[dict[str, Any]]] = {}
        self.turns = 0  # numbers every turn's text, so each is unique in the run
        self.random = random.Random(13)
        self.reply_s = 0.4  # the upstream's mean time for a whole reply, set by the caller

    def direct_prompt(self, session: str) -> list[dict[str, Any]]:
        """The context the proxy sends for this session: the same memory over the same store."""
        if session not in self.contexts:
            store = SQLiteStore(f"sqlite:///{self.store}")
            memory = Memory(self.policy, MAX_TOKENS, RESERVE, store=store, session=session)
            self.contexts[session] = memory.context().to_openai()
            store.close()
        return self.contexts[session]

    async def turn(self, session: str, k: int, *, path: str, stream: bool) -> float:
        """The ``k``-th turn of a round; its latency in ms (to the first streamed token when ``stream``)."""
        self.turns += 1
        text = f"turn {self.turns} of {session}: what did we say about item {self.turns % 97}?"
        new = [{"role": "user", "content": text}]
        messages = [*self.direct_prompt(session), *new] if path == "direct" else new
        body = json.dumps(
            {
                "model": "bench-model",
                "messages": messages,
                "max_tokens": RESERVE,
                "stream": stream,
                "user": f"{session}:{k}",
            }
        )
        headers = {"x-finite-memory-session": session} if path == "proxy" else {}
        key = (path, session)
        connection = self.connections.get(key) or self.connections.setdefault(key, Connection(self.ports[path]))
        elapsed, reply = await connection.post(body.encode(), headers)
        if path == "proxy":
            self.answered.setdefault(session, []).append(text)
            if not stream:
                self.prompt_tokens.append(json.loads(reply)["usage"]["prompt_tokens"])
        return elapsed * 1000

    async def round(
        self, sessions: list[str], turns: int, *, path: str, stream: bool, think_ms: float = 0.0
    ) -> list[float]:
        """Every session's ``turns`` turns, all sessions at once; each session pauses between its turns
        for ``think_ms`` on average (0.5x to 1.5x, seeded), as a user reads and types."""

        async def one(session: str, start: float) -> list[float]:
            await asyncio.sleep(start)
            out = []
            for k in range(turns):
                if think_ms:
                    await asyncio.sleep(self.random.uniform(0.5, 1.5) * think_ms / 1000)
                out.append(await self.turn(session, k, path=path, stream=stream))
            return out

        # sessions start at random moments within one reply's time, as users do, not all at once
        starts = [self.random.uniform(0, self.reply_s) if len(sessions) > 1 else 0.0 for _ in sessions]
        results = await asyncio.gather(*(one(s, start) for s, start in zip(sessions, starts, strict=True)))
        return [x for r in results for x in r]

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(
    load: Load, sessions: list[str], args: argparse.Namespace, proxy_pid: int, think_ms: float
) -> dict[str, float]:
    figures: dict[str, float] = {}
    for stream in (False, True):
        kind = "stream" if stream else "whole"
        for path in ("proxy", "direct"):  # warm both paths (and load every session into the proxy)
            await load.round(sessions, 1, path=path, stream=stream)
        timings: dict[str, list[float]] = {"proxy": [], "direct": []}
        cpu = 0.0
        for _ in range(args.rounds):
            before = cpu_seconds(proxy_pid)
            timings["proxy"] += await load.round(sessions, args.turns, path="proxy", stream=stream, think_ms=think_ms)
            cpu += cpu_seconds(proxy_pid) - before
            timings["direct"] += await load.round(sessions, args.turns, path="direct", stream=stream, think_ms=think_ms)
        for q, label in ((0.5, "p50"), (0.99, "p99")):
            proxy, direct = percentile(timings["proxy"], q), percentile(timings["direct"], q)
            figures[f"{kind} {label}"] = proxy - direct
            figures[f"{kind} {label} proxy"], figures[f"{kind} {label} direct"] = proxy, direct
        figures[f"{kind} turns"] = len(timings["proxy"])
        figures[f"{kind} cpu ms"] = cpu * 1000 / len(timings["proxy"])
    return figures


def report(count: int, figures: dict[str, float], args: argparse.Namespace, think_ms: float) -> None:
    whole_ms = args.first_ms + args.token_ms * (TOKENS - 1)
    pace = f"{think_ms / 1000:g} s between turns" if think_ms else "no pause between turns"
    print(f"{count} session{'s' if count > 1 else ''} at once, {pace}:")
    for kind, what in (
        ("whole", f"whole reply (~{whole_ms:.0f} ms)"),
        ("stream", f"first token (~{args.first_ms:.0f} ms)"),
    ):
        parts = []
        for label, target in (("p50", P50_TARGET_MS), ("p99", P99_TARGET_MS)):
            added = figures[f"{kind} {label}"]
            goal = f"target <= {target:.0f} ms {verdict(added <= target)}" if count == 50 else "report"
            proxy, direct = figures[f"{kind} {label} proxy"], figures[f"{kind} {label} direct"]
            parts.append(f"{label} {added:+6.2f} ms ({proxy:.1f} vs {direct:.1f}; {goal})")
        # the CPU clock ticks every 10 ms: a figure only over many turns
        cpu = f"proxy CPU {figures[f'{kind} cpu ms']:.2f} ms/turn" if count > 1 else "proxy CPU (too few turns)"
        print(f"  {what:<24} {int(figures[f'{kind} turns']):>4} turns, {cpu}: added " + "; ".join(parts))


def check_store(path: Path, load: Load) -> tuple[int, int, int, int]:
    """(answered turns, lost, duplicated, out of order): each answered turn must be archived once, in order."""
    store = SQLiteStore(f"sqlite:///{path}")
    answered = lost = duplicated = misplaced = 0
    for session, texts in load.answered.items():
        added = store.messages(session, after=ARCHIVE - 1)
        users = [m.content for m in added if m.role == "user"]
        replies = sum(1 for m in added if m.role == "assistant")
        answered += len(texts)
        lost += len(set(texts) - set(users))
        duplicated += len(users) - len(set(users)) + len(set(users) - set(texts)) + abs(replies - len(users))
        misplaced += sum(1 for a, b in zip(users, texts, strict=False) if a != b)
    store.close()
    return answered, lost, duplicated, misplaced


# -- running it -----------------------------------------------------------------------------------------


def fill_store(path: Path, sessions: int) -> None:
    store = SQLiteStore(f"sqlite:///{path}?synchronous=off")
    for s in range(sessions):
        texts = (
            f"session {s} message {i}: what do you think about item {i % 97} and the weather today?"
            if i % 2 == 0
            else f"reply {i}: item {i % 89} is fine, and the weather is mild and dry in session {s}."
            for i in range(ARCHIVE)
        )
        store.append(
            f"bench-{s}",
            [Message("user" if i % 2 == 0 else "assistant", t, id=i, turn=i // 2) for i, t in enumerate(texts)],
        )
    store.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the process for port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port} after {timeout:.0f} s")


async def drive(args: argparse.Namespace, ports: tuple[int, int], store: Path, proxy_pid: int) -> Load:
    load = Load(ports[0], ports[1], store, args.policy)
    load.reply_s = (args.first_ms + args.token_ms * (TOKENS - 1)) / 1000
    for count, think_ms in ((1, 0.0), (50, 0.0), (50, args.think_ms)):
        sessions = [f"bench-{i}" for i in range(count)]
        report(count, await measure(load, sessions, args, proxy_pid, think_ms), args, think_ms)
    load.close()
    status = dict(line.split(":", 1) for line in Path(f"/proc/{proxy_pid}/status").read_text().splitlines())
    rss = int(status["VmRSS"].split()[0]) / 1024
    print(f"proxy resident memory holding {max(SESSIONS)} sessions x {ARCHIVE:,}+ messages: {rss:,.0f} MiB")
    full = []
    archive = SQLiteStore(f"sqlite:///{store}")
    for session in load.answered:
        full.append(prompt_tokens(to_openai(archive.messages(session))))
    archive.close()
    sent, whole = statistics.mean(load.prompt_tokens), statistics.mean(full)
    print(
        f"prompt tokens sent upstream per turn (the upstream's count): {sent:,.0f}, against {whole:,.0f} "
        f"for the full history: {whole / sent:.0f}x fewer (budget {MAX_TOKENS - RESERVE:,} by the memory's estimate)"
    )
    return load


def run(args: argparse.Namespace) -> None:
    print(
        f"== finite-memory serve: {ARCHIVE:,}-message archives, policy {args.policy}, {MAX_TOKENS:,}-token budget, "
        f"{args.rounds} x {args.turns} turns a session per figure =="
    )
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as folder:
        store = Path(folder) / "serve.db"
        started = time.perf_counter()
        fill_store(store, max(SESSIONS))
        print(f"filled {max(SESSIONS)} sessions x {ARCHIVE:,} messages in {time.perf_counter() - started:.1f} s")
        ports = free_port(), free_port()
        timing = ["--first-ms", str(args.first_ms), "--token-ms", str(args.token_ms)]
        upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(ports[1]), *timing])
        # fmt: off
        proxy = subprocess.Popen(
            [sys.executable, "-m", "finite_memory", "serve", "--backend", "openai:bench-model",
             "--base-url", f"http://127.0.0.1:{ports[1]}/v1", "--policy", args.policy,
             "--max-tokens", str(MAX_TOKENS), "--reserve-output", str(RESERVE),
             "--store", f"sqlite:///{store}?synchronous={args.synchronous}", "--port", str(ports[0])],
            env={**os.environ, "OPENAI_API_KEY": "sk-bench"},
        )
        # fmt: on
        try:
            wait_for(ports[1], upstream)
            wait_for(ports[0], proxy)
            load = _run_loop(drive(args, ports, store, proxy.pid))
        finally:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(60)
            upstream.kill()
            upstream.wait(10)
        answered, lost, duplicated, misplaced = check_store(store, load)
        print(
            f"store after the run: {answered:,} answered turns, {lost} lost, {duplicated} duplicated, "
            f"{misplaced} out of order (target 0, 0, 0)  {verdict(lost == duplicated == misplaced == 0)}"
        )
    after = os.getloadavg()[0]
    print(f"machine load (1-minute average): {load_before:.1f} before, {after:.1f} after, {os.cpu_count()} cores")


def _run_loop(work: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer turns, for a smoke run")
    parser.add_argument("--policy", default="sliding", help="the proxy's memory policy (sliding)")
    parser.add_argument("--first-ms", type=float, default=100.0, help="upstream time to the first token (100)")
    parser.add_argument("--token-ms", type=float, default=20.0, help="upstream time per further token (20)")
    parser.add_argument(
        "--synchronous", default="normal", choices=["normal", "full"], help="the SQLite store's flush mode (normal)"
    )
    parser.add_argument("--think-ms", type=float, default=1000.0, help="a user's pause between turns, mean (1000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per figure (4; 2 with --quick)")
    parser.add_argument("--turns", type=int, default=None, help="turns per session and round (5; 2 with --quick)")
    parser.add_argument("--upstream", type=int, default=None, help=argparse.SUPPRESS)  # serve the upstream on this port
    args = parser.parse_args()
    if args.upstream is not None:
        _run_loop(upstream_server(args.upstream, args.first_ms, args.token_ms))
        return
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.turns = args.turns or (2 if args.quick else 5)
    run(args)


if __name__ == "__main__":
    main()
