"""PostgreSQL durability figures for ``bench_durability.py``, on a server this run starts itself.

Every figure sits beside a plain ``psycopg`` baseline measured in the same run on the same
server (fsync on): one ``INSERT`` per row in autocommit, what an application writing the
same rows without finite-memory would do. The server is started with ``initdb``/``pg_ctl``
in a temporary folder on 127.0.0.1 (``finite_memory.stores.pgtest``).
"""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from typing import Any

from _bench import pct, row, verdict

from finite_memory import Memory, Message

#: Reopening a 100,000-message session and building its first context, SQLite and PostgreSQL alike.
REOPEN_TARGET_S = 1.0
PLAIN_TABLE = (
    "CREATE TABLE IF NOT EXISTS plain (session TEXT, id BIGSERIAL, turn BIGINT, role TEXT, content TEXT, meta TEXT,"
    " PRIMARY KEY (session, id))"
)
PLAIN_INSERT = "INSERT INTO plain (session, turn, role, content, meta) VALUES (%s, %s, %s, %s, %s)"


Lines = list[tuple[str, str, dict[str, str]]]


# -- one writer ---------------------------------------------------------------------------------


def memory_adds(url: str, session: str, lines: Lines) -> list[float]:
    """Add ``lines`` one by one to a session of any store; the latency of each add, in seconds."""
    mem = Memory(store=url, session=session)
    latencies = []
    for role, text, meta in lines:
        t0 = time.perf_counter()
        mem.add(role, text, meta=meta)
        latencies.append(time.perf_counter() - t0)
    mem.close()
    return latencies


def serial(url: str, plain_url: str, lines: Lines) -> None:
    import psycopg

    n = len(lines)
    ours = memory_adds(url, "serial", lines)
    plain = []
    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(PLAIN_TABLE)
        for i, (role, text, meta) in enumerate(lines):
            t0 = time.perf_counter()
            conn.execute(PLAIN_INSERT, ("serial", i // 2, role, text, json.dumps(meta)))
            plain.append(time.perf_counter() - t0)
    print(f"\nPostgreSQL add, one session, {n} adds (plain: psycopg INSERT, autocommit, same server)")
    row("", "Memory.add", "plain psycopg", "ours/plain")
    row("throughput (adds/s)", f"{n / sum(ours):,.0f}", f"{n / sum(plain):,.0f}", f"{sum(ours) / sum(plain):.2f}x")
    for q, name in ((0.5, "p50"), (0.99, "p99")):
        a, b = pct(ours, q) * 1000, pct(plain, q) * 1000
        row(f"{name} latency (ms)", f"{a:.3f}", f"{b:.3f}", f"{a / b:.2f}x")


# -- 8 processes x 4 threads ------------------------------------------------------------------------


def _process(args: tuple[str, str, bool, int, float, float]) -> dict[str, Any]:
    """One process: 4 threads, each on its own session, or alternating between it and one of 2 shared ones."""
    kind, url, shared_too, proc, start_at, seconds = args
    results: dict[str, list[str]] = {}
    latencies: list[float] = []
    errors: list[str] = []
    window: list[float] = []
    lock = threading.Lock()

    def work(thread: int) -> None:
        mine, shared = f"p{proc}-t{thread}", f"shared-{thread % 2}" if shared_too else f"p{proc}-t{thread}"
        added: dict[str, list[str]] = {mine: [], shared: []}
        times: list[float] = []
        if kind == "memory":
            memories = {s: Memory(store=url, session=s) for s in added}

            def add(session: str, text: str) -> None:
                memories[session].add("user", text)
        else:
            import psycopg

            conn = psycopg.connect(url, autocommit=True)

            def add(session: str, text: str) -> None:
                conn.execute(PLAIN_INSERT, (session, 0, "user", text, None))

        while time.time() < start_at:
            time.sleep(0.001)
        began = time.time()  # later than start_at when opening the memories took longer (a loaded machine)
        n = 0
        while time.time() < began + seconds:
            session = shared if n % 2 else mine
            text = f"{mine}#{n}"
            t0 = time.perf_counter()
            try:
                add(session, text)
            except Exception as exc:  # counted and shown, never hidden
                errors.append(f"{type(exc).__name__}: {exc}"[:200])
                break
            times.append(time.perf_counter() - t0)
            added[session].append(text)
            n += 1
        with lock:
            window.extend((began, time.time()))
            latencies.extend(times)
            for session, texts in added.items():
                results.setdefault(session, []).extend(texts)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"results": results, "latencies": latencies, "errors": errors, "window": window}


def _run_8x4(
    kind: str, url: str, shared: bool, seconds: float, pool: Any, during: Callable[[], None] | None = None
) -> dict[str, Any]:
    """Every process's results merged; ``window`` is the wall time from the first add to the last."""
    start_at = time.time() + 4.0  # the processes open their memories first
    pending = pool.map_async(_process, [(kind, url, shared, p, start_at, seconds) for p in range(8)])
    if during is not None:
        time.sleep(max(0.0, start_at - time.time()) + seconds / 2)
        during()
    reports = pending.get(timeout=seconds + 300)
    merged: dict[str, Any] = {"results": {}, "latencies": [], "errors": []}
    times: list[float] = []
    for report in reports:
        merged["latencies"] += report["latencies"]
        merged["errors"] += report["errors"]
        times += report["window"]
        for session, texts in report["results"].items():
            merged["results"].setdefault(session, []).extend(texts)
    merged["window"] = max(times) - min(times)
    return merged


def _check(url: str, results: dict[str, list[str]]) -> tuple[int, int, int]:
    """Stored adds, and how many of the returned ones are lost or duplicated."""
    from finite_memory.stores import open_store

    store = open_store(url)
    stored = lost = duplicated = 0
    for session, texts in results.items():
        contents = [m.content for m in store.messages(session)]
        stored += len(contents)
        duplicated += len(contents) - len(set(contents))
        lost += len(set(texts) - set(contents))
    store.close()
    return stored, lost, duplicated


def concurrent(server: Any, seconds: float) -> None:
    import psycopg

    ctx = multiprocessing.get_context("spawn")
    with psycopg.connect(server.url, autocommit=True) as conn:
        conn.execute(PLAIN_TABLE)
    with ctx.Pool(8) as pool:
        for shared, what in ((False, "32 distinct sessions"), (True, "distinct and 2 shared sessions, alternating")):
            url = server.url + f"?schema=concurrent_{int(shared)}"
            Memory(store=url, session="init").close()
            ours = _run_8x4("memory", url, shared, seconds, pool)
            plain = _run_8x4("plain", server.url, shared, seconds, pool)
            stored, lost, dup = _check(url, ours["results"])
            print(f"\nPostgreSQL add, 8 processes x 4 threads, {what}, {seconds:g} s")
            row("", "Memory.add", "plain psycopg", "ours/plain")
            a, b = len(ours["latencies"]) / ours["window"], len(plain["latencies"]) / plain["window"]
            row("throughput (adds/s, all processes)", f"{a:,.0f}", f"{b:,.0f}", f"{b / a:.2f}x" if a else "n/a")
            for q, name in ((0.5, "p50"), (0.99, "p99")):
                x, y = pct(ours["latencies"], q) * 1000, pct(plain["latencies"], q) * 1000
                row(f"{name} latency (ms)", f"{x:.3f}", f"{y:.3f}", f"{x / y:.2f}x")
            row("errors / lost / duplicated", f"{len(ours['errors'])} / {lost} / {dup}", "target 0 / 0 / 0")
            row("", f"{stored:,} stored", "", verdict(not ours["errors"] and not lost and not dup))
        restart_url = server.url + "?schema=restarted"
        Memory(store=restart_url, session="init").close()
        stall: list[float] = []

        def restart() -> None:
            t0 = time.perf_counter()
            server.restart(mode="immediate")
            stall.append(time.perf_counter() - t0)

        restarted = _run_8x4("memory", restart_url, True, seconds, pool, during=restart)
    stored, lost, dup = _check(restart_url, restarted["results"])
    errors = restarted["errors"]
    print(f"\nPostgreSQL restarted (pg_ctl -m immediate, then start) in the middle of the mixed run, {seconds:g} s")
    row("server down and back (s)", f"{stall[0]:.2f}" if stall else "n/a")
    row("adds during the run", f"{len(restarted['latencies']):,}")
    row("slowest add, riding through (s)", f"{max(restarted['latencies'], default=0):.2f}")
    row("p99 latency (ms)", f"{pct(restarted['latencies'], 0.99) * 1000:.1f}")
    row("errors / lost / duplicated", f"{len(errors)} / {lost} / {dup}", "target 0 / 0 / 0")
    row("", f"{stored:,} stored", "", verdict(not errors and not lost and not dup))
    if errors:
        print(f"  first error: {errors[0]}")


# -- kill -9 of writers ------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from finite_memory import Memory
    shared = Memory(store=sys.argv[1], session="shared")
    own = Memory(store=sys.argv[1], session=sys.argv[2])
    print("ready", flush=True)
    n = 0
    while True:
        for mem in (shared, own):
            mem.add("user", f"{sys.argv[2]}#{n}")
            print(f"{mem.session} {sys.argv[2]}#{n}", flush=True)
        n += 1
    """
)


def kill_writers(server: Any, rounds: int) -> None:
    url = server.url + "?schema=killed"
    Memory(store=url, session="init").close()
    rng = random.Random(7)
    returned: dict[str, set[str]] = {}
    in_flight = 0
    for r in range(rounds):
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", WRITER, url, f"w{r}-{i}"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,  # readline() must not read ahead of what communicate() returns
            )
            for i in range(4)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.3, 0.8))
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
        for proc in procs:
            out, _ = proc.communicate(timeout=60)
            for line in out.decode().splitlines():
                session, _, text = line.partition(" ")
                if text:
                    returned.setdefault(session, set()).add(text)
            in_flight += 1
    from finite_memory.stores import open_store

    store = open_store(url)
    lost = dup = extra = 0
    for session in store.sessions():
        rows = store.messages(session)
        contents = [m.content for m in rows]
        dup += len(contents) - len(set(contents))
        lost += len(returned.get(session, set()) - set(contents))
        extra += len(set(contents) - returned.get(session, set()))
        assert [m.id for m in rows] == list(range(len(rows))), "ids must be consecutive"
    store.close()
    total = sum(len(v) for v in returned.values())
    print(f"\nPostgreSQL writers killed with kill -9: {rounds} rounds x 4 processes, {total:,} adds returned")
    row("returned adds lost / duplicated", f"{lost} / {dup}", "target 0 / 0", verdict(not lost and not dup))
    row("stored but not yet reported (in flight)", f"{extra}", f"at most {in_flight}", verdict(extra <= in_flight))


# -- reopening ----------------------------------------------------------------------------------------


def reopen_times(url: str, lines: Lines) -> tuple[float, float, float, int]:
    """Write ``lines`` to a session of any store, then reopen it 3 times: the best (open, first context,
    both) in seconds, and how many messages that context kept."""
    writer = Memory(store=url, session="long", max_tokens=4096)
    batch = [Message(role, text, meta=meta) for role, text, meta in lines]
    for i in range(0, len(batch), 1000):
        writer.extend(batch[i : i + 1000])
    writer.close()

    def once() -> tuple[float, float, float, int]:
        t0 = time.perf_counter()
        mem = Memory(store=url, session="long", max_tokens=4096)
        t1 = time.perf_counter()
        ctx = mem.context(query="Where did I move?")
        t2 = time.perf_counter()
        assert len(mem) == len(batch) and ctx.tokens <= mem.budget
        mem.close()
        return t1 - t0, t2 - t1, t2 - t0, len(ctx.messages)

    return min((once() for _ in range(3)), key=lambda r: r[2])


def reopen(server: Any, lines: Lines) -> None:
    import psycopg

    n = len(lines)
    open_s, ctx_s, total_s, _ = reopen_times(server.url + "?schema=reopen", lines)
    with psycopg.connect(server.url) as conn:
        t0 = time.perf_counter()
        rows = conn.execute(
            "SELECT role, content, meta, id, turn FROM reopen.fm_messages WHERE session = 'long' ORDER BY id"
        ).fetchall()
        raw_s = time.perf_counter() - t0
    assert len(rows) == n
    print(f"\nReopening a {n:,}-message PostgreSQL session (best of 3)")
    row("open (read + replay)", f"{open_s:.3f} s")
    row("  plain psycopg fetchall of the same rows", f"{raw_s:.3f} s")
    row("first context", f"{ctx_s * 1000:.1f} ms")
    row(
        "reopen + first context",
        f"{total_s:.3f} s",
        f"target < {REOPEN_TARGET_S:.0f} s",
        verdict(total_s < REOPEN_TARGET_S),
    )


def bench_postgres(quick: bool, conversation: Callable[[int], Lines]) -> None:
    """Every PostgreSQL figure, or one line saying why they were not measured."""
    try:
        import psycopg  # noqa: F401

        from finite_memory.stores.pgtest import TemporaryPostgres, find_binaries

        find_binaries()
    except (ImportError, FileNotFoundError) as exc:
        print(f"\nPostgreSQL figures not measured: {exc} (pip install 'finite-memory-core[postgres]')")
        return
    with TemporaryPostgres(fsync=True) as server:
        print(f"\nPostgreSQL server: {server.bin}, fsync on, 127.0.0.1:{server.port}")
        serial(server.url + "?schema=serial", server.url, conversation(500 if quick else 3000))
        concurrent(server, 2.0 if quick else 8.0)
        kill_writers(server, 2 if quick else 5)
        reopen(server, conversation(20_000 if quick else 100_000))
