"""Crashes and contention with real processes: kill -9 while saving or adding, 8 processes x 4 threads,
on SQLite and on the PostgreSQL server the test session starts.

``FM_STRESS_SECONDS`` sets how long the concurrency test runs (default 3; the figure in
the report is measured with ``FM_STRESS_SECONDS=10``).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from finite_memory import Memory

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX kill -9")

STRESS_SECONDS = float(os.environ.get("FM_STRESS_SECONDS", "3"))

SAVER = textwrap.dedent(
    """
    import os, sys
    from finite_memory import Memory
    path = sys.argv[1]
    mem = Memory.load(path) if os.path.exists(path) else Memory(max_tokens=400)
    n = len(mem)
    while True:
        mem.add("user" if n % 2 == 0 else "assistant", f"message {n} " + "x" * (n % 700))
        n += 1
        mem.save(path)
        print(n, flush=True)
    """
)

ADDER = textwrap.dedent(
    """
    import sys
    from finite_memory import Memory
    mem = Memory(store=sys.argv[1], session="s")
    n = len(mem)
    print("ready", flush=True)
    while True:
        message = mem.add("user", f"message {n}", meta={"n": n})
        print(message.id, flush=True)
        n += 1
    """
)


def _run_and_kill(script: str, args: list[str], wait: float) -> list[str]:
    """Start ``script``, let it run ``wait`` seconds after it starts printing, kill -9 it, return its stdout lines."""
    # bufsize=0: readline() must not buffer lines past the first, since communicate() reads the raw pipe
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()  # the process is running its loop
    time.sleep(wait)
    os.kill(proc.pid, signal.SIGKILL)
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err.decode()
    return [line for line in (first + rest).decode().splitlines() if line]


def test_kill_9_while_saving_never_loses_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "mem.json"
    rng = random.Random(1234)
    confirmed = 0
    kills = 0
    for _ in range(55):
        lines = _run_and_kill(SAVER, [str(path)], rng.uniform(0.0, 0.25))
        kills += 1
        last_returned = int(lines[-1])
        assert last_returned > confirmed
        mem = Memory.load(path)  # always loads
        # the last save that returned, or the one in flight whose rename had happened
        assert len(mem) in (last_returned, last_returned + 1), (len(mem), last_returned)
        assert mem.messages[-1].content.startswith(f"message {len(mem) - 1} ")
        assert [m.id for m in mem.messages] == list(range(len(mem)))
        confirmed = len(mem)
    mid_write = len(list(tmp_path.glob(".mem.json.*.tmp")))  # temp files left by kills that landed mid-save
    print(f"\n{kills} kills, {mid_write} of them mid-write; the checkpoint loaded every time ({confirmed} messages)")
    assert kills >= 50 and confirmed > 50 and mid_write > 0


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store URL: a SQLite file, or a schema of its own on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/chats.db"
    pytest.importorskip("psycopg")
    return request.getfixturevalue("postgres").url + f"?schema=crash_{tmp_path.name.lower()}"


def test_kill_9_while_adding_keeps_every_returned_add(store_url: str) -> None:
    rng = random.Random(99)
    returned: list[int] = []
    for _ in range(8):
        lines = _run_and_kill(ADDER, [store_url], rng.uniform(0.05, 0.4))
        assert lines[0] == "ready"
        returned += [int(x) for x in lines[1:]]
        archive = Memory(store=store_url, session="s").messages
        ids = [m.id for m in archive]
        assert ids == list(range(len(archive)))  # nothing duplicated, nothing skipped
        assert set(returned) <= set(ids)  # every add that returned is there
        assert len(archive) - len(returned) <= 1  # at most the add in flight, committed but not yet reported
        assert all(m.content == f"message {m.id}" and m.meta == {"n": m.id} for m in archive)
        returned = ids  # the next process continues after what is on disk
    assert len(returned) > 100


WORKER = textwrap.dedent(
    """
    import json, sys, threading, time
    from finite_memory import Memory
    store, proc, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    results, errors = {}, []
    start_at = float(sys.argv[4])

    def work(thread):
        mine = f"p{proc}-t{thread}"
        shared = f"shared-{thread % 2}"
        memories = {mine: Memory(store=store, session=mine), shared: Memory(store=store, session=shared)}
        added = {mine: [], shared: []}
        latencies = []
        while time.time() < start_at:
            time.sleep(0.001)
        end = max(start_at, time.time()) + seconds  # a loaded machine may open the memories late
        n = 0
        while time.time() < end:
            session = shared if n % 2 else mine
            text = f"{mine}#{n}"
            t0 = time.perf_counter()
            try:
                memories[session].add("user", text)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                break
            latencies.append(time.perf_counter() - t0)
            added[session].append(text)
            n += 1
        results[thread] = {"added": added, "latencies": latencies}

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(json.dumps({"results": results, "errors": errors}))
    """
)


def test_8_processes_x_4_threads_lose_and_duplicate_nothing(store_url: str) -> None:
    Memory(store=store_url, session="init").close()  # create the schema once
    start_at = time.time() + 2.0  # all processes start adding together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_url, str(p), str(STRESS_SECONDS), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(8)
    ]
    expected: dict[str, list[str]] = {}
    latencies: list[float] = []
    for proc in procs:
        out, err = proc.communicate(timeout=STRESS_SECONDS + 120)
        assert proc.returncode == 0, err
        report = json.loads(out)
        assert report["errors"] == []  # no "database is locked", no conflict reaches the caller
        for result in report["results"].values():
            latencies += result["latencies"]
            for session, texts in result["added"].items():
                expected.setdefault(session, []).extend(texts)
    check = Memory(store=store_url, session="init")
    total = 0
    for session, texts in expected.items():
        archive = check.store.messages(session)
        contents = [m.content for m in archive]
        assert len(contents) == len(set(contents))  # nothing duplicated
        assert sorted(contents) == sorted(texts)  # nothing lost
        assert [m.id for m in archive] == list(range(len(archive)))
        total += len(archive)
    assert set(expected) == {f"p{p}-t{t}" for p in range(8) for t in range(4)} | {"shared-0", "shared-1"}
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000
    print(
        f"\n8 processes x 4 threads, {STRESS_SECONDS:g} s: {total} adds committed, "
        f"{total / STRESS_SECONDS:.0f} adds/s, "
        f"p50 {latencies[len(latencies) // 2] * 1000:.1f} ms, p99 {p99:.1f} ms, 0 errors"
    )
    assert total > 8 * 4 * 2
