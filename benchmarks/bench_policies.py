"""Per-call cost of every registered policy at 1,000 and 50,000 archived messages, side by side.

Run with ``python benchmarks/bench_policies.py [--quick]``. For each policy, two memories
are filled with the same synthetic conversation (its small vocabulary makes long
postings lists: a hard case for retrieval); ``add`` is timed over the last 1,000 messages
and ``context(query=...)`` over the generator's questions, each question's best of several
rounds (load from other processes only ever adds time). Targets (retrieval policies): ``add`` < 1 ms,
``context`` < 20 ms, and each flat (50k / 1k <= 2x). Exits 0 even when a target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import time

from _bench import verdict

from finite_memory import Memory, Message, plugins
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.synthetic import generate_conversation

BUDGET = 1024
SMALL, LARGE = 1_000, 50_000
ADD_MS, CONTEXT_MS, FLAT = 1.0, 20.0, 2.0
TIMED_ADDS = 1_000
#: Queries in the generator's everyday vocabulary: they match many turns at both sizes, so the
#: retrieval policies do their full, capped amount of work at 1k as at 50k.
BROAD = [
    "What did you say about the weather and the garden?",
    "Any news about work, a podcast or a documentary?",
    "Tell me about the weekend and the new recipe.",
    "What about traffic and work this week?",
    "Did you talk about the river, the dog or travel photos?",
]


def lines(count: int) -> tuple[list[Message], list[str]]:
    sample = generate_conversation(11, sessions=count // 16 + 2)
    messages = [
        Message(line.role, line.content, meta={"date_time": line.date_time or ""})  # type: ignore[arg-type]
        for line in dialogue(sample)
    ]
    return messages[:count], [qa["question"] for qa in sample["qa"]]


def filled(policy: str, messages: list[Message]) -> tuple[Memory, float]:
    """A memory holding all the messages: the last 1,000 added one by one, timed in blocks of 200.

    Returns the memory and the ms per ``add`` of the fastest block (each block holds
    embedding-batch flushes like any other; load from other processes only adds time).
    """
    memory = Memory(policy, max_tokens=BUDGET, reserve_output=0)
    memory.extend(messages[:-TIMED_ADDS])
    blocks = []
    tail = messages[-TIMED_ADDS:]
    for start in range(0, TIMED_ADDS, 200):
        began = time.perf_counter()
        for message in tail[start : start + 200]:
            memory.add(message.role, message.content, meta=message.meta)
        blocks.append((time.perf_counter() - began) * 1000 / len(tail[start : start + 200]))
    return memory, min(blocks)


def context_ms(memory: Memory, queries: list[str], rounds: int) -> float:
    """Median over the queries of each query's best time over ``rounds`` (load on the machine only adds)."""
    best = dict.fromkeys(range(len(queries)), float("inf"))
    for _ in range(rounds):
        for i, query in enumerate(queries):
            start = time.perf_counter()
            memory.context(query=query)
            best[i] = min(best[i], time.perf_counter() - start)
    return statistics.median(best.values()) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"10,000 messages instead of {LARGE:,}, fewer rounds")
    args = parser.parse_args()
    large = 10_000 if args.quick else LARGE
    rounds = 2 if args.quick else 7
    small_msgs, queries = lines(SMALL)
    large_msgs, _ = lines(large)
    print(f"== per-call cost at {SMALL:,} vs {large:,} archived messages, {BUDGET}-token context ==")
    print(f"{'policy':<16}{'add 1k':>9}{'add big':>9}{'ratio':>7}   {'context 1k / big / ratio':>25}   verdict")
    for name in sorted(plugins("policies")):
        small, small_add = filled(name, small_msgs)
        big, big_add = filled(name, large_msgs)
        small.context(query=queries[0])  # warm-up: a summary policy folds the whole history once here
        big.context(query=queries[0])
        add_ratio = big_add / small_add
        figures = {}
        for label, asked in (("questions", queries), ("broad", BROAD)):
            s_ctx, b_ctx = context_ms(small, asked, rounds), context_ms(big, asked, rounds)
            figures[label] = (s_ctx, b_ctx, b_ctx / s_ctx)
        judged = name in ("semantic", "hybrid")
        for i, (label, (s_ctx, b_ctx, ratio)) in enumerate(figures.items()):
            adds = f"{small_add:9.3f}{big_add:9.3f}{add_ratio:6.2f}x" if i == 0 else " " * 25
            ok = big_add < ADD_MS and add_ratio <= FLAT and b_ctx < CONTEXT_MS and ratio <= FLAT
            mark = verdict(ok) if judged else "-"
            row = f"{label:<9}{s_ctx:6.2f} / {b_ctx:6.2f} /{ratio:5.2f}x"
            print(f"{name if i == 0 else '':<16}{adds}   {row}   {mark}")
    print(
        f"targets (semantic, hybrid): add < {ADD_MS:g} ms and context < {CONTEXT_MS:g} ms at {LARGE:,} messages, "
        f"add and context each <= {FLAT:g}x the {SMALL:,}-message figure (judged on each query set)."
    )
    print(
        f"ms; add: mean per call of the fastest block of 200 of the last {TIMED_ADDS:,} adds; "
        f"context: median over the queries of each one's best of {rounds} rounds."
    )
    print(
        f"'questions' are the generator's fact questions: at {SMALL:,} messages few turns match them, so "
        "retrieval does less than its capped work there and their ratio shows the number of matching turns "
        "growing (up to the cap), not the history; 'broad' queries match many turns at both sizes."
    )


if __name__ == "__main__":
    main()
