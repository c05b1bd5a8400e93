"""Durability figures: SQLite and PostgreSQL add throughput and latency, crashes, checkpoints, reopening.

Each figure is printed beside a baseline measured in the same run on the same data:
plain ``sqlite3`` inserts (same WAL mode, same ``synchronous``, one transaction each),
plain ``json.dump``/``json.load`` of the same messages, a plain ``sqlite3``
``executemany`` of them, and plain ``psycopg`` inserts on the same PostgreSQL server
(started by this run; see ``_durability_pg.py``: 8 processes x 4 threads, a restart of
the server mid-run, kill -9 of writers, reopening a 100,000-message session).

    python benchmarks/bench_durability.py            # full run (100,000-message figures)
    python benchmarks/bench_durability.py --quick    # smaller sizes, a few seconds

The ``ours/plain`` column is a cost ratio: time (or latency) with finite-memory divided
by the baseline's, so 1.5x means 50 % slower; for throughput, the baseline's adds/s
divided by ours.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from _bench import pct, row, verdict
from _durability_pg import REOPEN_TARGET_S, bench_postgres, memory_adds, reopen_times

from finite_memory import Memory, Message
from finite_memory.stores.sqlite import SQLiteStore

WORDS = [
    "the",
    "a",
    "to",
    "of",
    "and",
    "I",
    "you",
    "my",
    "we",
    "it",
    "is",
    "was",
    "in",
    "on",
    "at",
    "for",
    "with",
    "about",
    "moved",
    "Lisbon",
    "May",
    "job",
    "sister",
    "dog",
    "trip",
]


def conversation(n: int, seed: int = 0) -> list[tuple[str, str, dict]]:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 60)))
        lines.append(("user" if i % 2 == 0 else "assistant", text, {"dia_id": f"D{i // 40}:{i % 40}"}))
    return lines


# -- adds --------------------------------------------------------------------------------


def plain_inserts(path: str, session: str, lines: list[tuple[str, str, dict]], synchronous: str) -> list[float]:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS m (session TEXT, id INTEGER, turn INTEGER, role TEXT, content TEXT, meta TEXT, "
        "PRIMARY KEY (session, id)) WITHOUT ROWID"
    )
    latencies = []
    for i, (role, text, meta) in enumerate(lines):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO m VALUES (?, ?, ?, ?, ?, ?)", (session, i, i // 2, role, text, json.dumps(meta)))
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - t0)
    conn.close()
    return latencies


def _proc_memory(args: tuple[str, str, int, float]) -> list[float]:
    url, session, n, start_at = args
    lines = conversation(n, seed=hash(session) % 1000)
    while time.time() < start_at:
        time.sleep(0.001)
    return memory_adds(url, session, lines)


def _proc_plain(args: tuple[str, str, int, float, str]) -> list[float]:
    path, session, n, start_at, synchronous = args
    lines = conversation(n, seed=hash(session) % 1000)
    while time.time() < start_at:
        time.sleep(0.001)
    return plain_inserts(path, session, lines, synchronous)


def bench_adds(folder: Path, n: int, procs: int) -> None:
    lines = conversation(n)
    for synchronous in ("full", "normal"):
        print(f"\nSQLite add, one session, {n} adds, synchronous={synchronous} (plain: sqlite3 INSERT, same pragmas)")
        row("", "Memory.add", "plain sqlite3", "ours/plain")
        url = f"sqlite:///{folder}/adds-{synchronous}.db?synchronous={synchronous}"
        t0 = time.perf_counter()
        mine = memory_adds(url, "one", lines)
        mine_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        plain = plain_inserts(str(folder / f"plain-{synchronous}.db"), "one", lines, synchronous)
        plain_s = time.perf_counter() - t0
        row("throughput (adds/s)", f"{n / mine_s:,.0f}", f"{n / plain_s:,.0f}", f"{mine_s / plain_s:.2f}x")
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            a, b = pct(mine, q) * 1000, pct(plain, q) * 1000
            row(f"{name} latency (ms)", f"{a:.3f}", f"{b:.3f}", f"{a / b:.2f}x")

        per_proc = max(1, n // procs)
        print(f"\nSQLite add, {procs} processes x 1 session each, {per_proc} adds each, synchronous={synchronous}")
        row("", "Memory.add", "plain sqlite3", "ours/plain")
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(procs) as pool:
            start_at = time.time() + 1.5
            t0 = time.time()
            results = pool.map(_proc_memory, [(url, f"p{p}", per_proc, start_at) for p in range(procs)])
            mine_s = time.time() - start_at
            plain_path = str(folder / f"plain-{synchronous}.db")
            start_at = time.time() + 1.5
            plain_results = pool.map(
                _proc_plain, [(plain_path, f"p{p}", per_proc, start_at, synchronous) for p in range(procs)]
            )
            plain_s = time.time() - start_at
        del t0
        mine = [x for r in results for x in r]
        plain = [x for r in plain_results for x in r]
        row(
            "throughput (adds/s, all processes)",
            f"{len(mine) / mine_s:,.0f}",
            f"{len(plain) / plain_s:,.0f}",
            f"{mine_s / plain_s:.2f}x",
        )
        for q, name in ((0.5, "p50"), (0.99, "p99")):
            a, b = pct(mine, q) * 1000, pct(plain, q) * 1000
            row(f"{name} latency (ms)", f"{a:.3f}", f"{b:.3f}", f"{a / b:.2f}x")


# -- checkpoints ---------------------------------------------------------------------------


def filled_memory(n: int) -> Memory:
    mem = Memory(max_tokens=4096)
    mem.extend(Message(role, text, meta=meta) for role, text, meta in conversation(n))
    return mem


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_checkpoints(folder: Path, sizes: list[int]) -> None:
    for n in sizes:
        bench_checkpoint(folder, n)


def bench_checkpoint(folder: Path, n: int) -> None:
    mem = filled_memory(n)
    dicts = [m.to_dict() for m in mem.messages]
    path = folder / f"ckpt-{n}.json"
    plain = folder / f"plain-{n}.json"
    repeat = 3 if n <= 10_000 else 2

    def plain_dump() -> None:
        with open(plain, "w") as f:
            json.dump(dicts, f)

    def plain_load() -> None:
        with open(plain) as f:
            json.load(f)

    def plain_sqlite() -> None:
        db = folder / f"plain-{n}.db"
        if db.exists():
            db.unlink()
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, turn INTEGER, role TEXT, content TEXT, meta TEXT)")
        with conn:
            conn.executemany(
                "INSERT INTO m VALUES (?, ?, ?, ?, ?)",
                ((d["id"], d["turn"], d["role"], d["content"], json.dumps(d.get("meta"))) for d in dicts),
            )
        conn.close()

    save_s = best(lambda: mem.save(path), repeat)
    load_s = best(lambda: Memory.load(path), repeat)
    dump_s = best(plain_dump, repeat)
    jload_s = best(plain_load, repeat)
    sql_s = best(plain_sqlite, repeat)
    size_mb = path.stat().st_size / 1e6
    print(f"\nCheckpoint, {n:,} messages ({size_mb:.1f} MB; best of {repeat})")
    row("", "finite-memory", "plain baseline", "ours/plain")
    row("save (s): vs json.dump, no fsync", f"{save_s:.3f}", f"{dump_s:.3f}", f"{save_s / dump_s:.2f}x")
    row("save (s): vs sqlite3 executemany", f"{save_s:.3f}", f"{sql_s:.3f}", f"{save_s / sql_s:.2f}x")
    row("load (s): vs json.load", f"{load_s:.3f}", f"{jload_s:.3f}", f"{load_s / jload_s:.2f}x")


# -- reopening -------------------------------------------------------------------------------


def bench_reopen(folder: Path, n: int) -> None:
    url = f"sqlite:///{folder}/reopen.db?synchronous=normal"
    open_s, ctx_s, total_s, kept = reopen_times(url, conversation(n))

    store = SQLiteStore(url)
    t0 = time.perf_counter()
    rows = store.messages("long")
    read_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    validated = [Message.from_dict(m.to_dict()) for m in rows]
    validated_s = time.perf_counter() - t0
    conn = sqlite3.connect(folder / "reopen.db")
    t0 = time.perf_counter()
    raw = conn.execute(
        "SELECT role, content, meta, id, turn FROM messages WHERE session = 'long' ORDER BY id"
    ).fetchall()
    raw_s = time.perf_counter() - t0
    assert len(raw) == len(validated) == n
    store.close()

    print(f"\nReopening a {n:,}-message SQLite session (best of 3)")
    row("open (read + replay)", f"{open_s:.3f} s")
    row("  store.messages() alone (trusted rows)", f"{read_s:.3f} s")
    row("  plain sqlite3 fetchall of the same rows", f"{raw_s:.3f} s")
    row("  validating Message.from_dict of the same", f"{validated_s:.3f} s")
    row(f"first context ({kept} messages)", f"{ctx_s * 1000:.1f} ms")
    row(
        "reopen + first context",
        f"{total_s:.3f} s",
        f"target < {REOPEN_TARGET_S:.0f} s",
        verdict(total_s < REOPEN_TARGET_S),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    parser.add_argument("--only", choices=("sqlite", "postgres"), help="one store's figures only")
    args = parser.parse_args()
    adds = 1000 if args.quick else 5000
    sizes = [10_000] if args.quick else [10_000, 100_000]
    reopen_n = 20_000 if args.quick else 100_000
    print(
        f"finite-memory durability benchmark; Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}, "
        f"{os.cpu_count()} CPUs"
    )
    if args.only != "postgres":
        with tempfile.TemporaryDirectory(prefix="fm-bench-", dir=os.environ.get("FM_BENCH_DIR")) as tmp:
            folder = Path(tmp)
            bench_adds(folder, adds, 8)
            bench_checkpoints(folder, sizes)
            bench_reopen(folder, reopen_n)
    if args.only != "sqlite":
        bench_postgres(args.quick, conversation)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
