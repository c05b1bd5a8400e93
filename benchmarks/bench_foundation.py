"""Foundation figures: per-turn cost flat in history length, vs a naive recount and LangChain, and import time.

Run with ``python benchmarks/bench_foundation.py`` (or ``nox -s bench``). Every ratio is
measured side by side in one run; rounds alternate between the cases so machine noise
hits them alike. LangChain's ``trim_messages`` is measured when ``langchain-core`` is
installed (``nox -s bench`` installs it), and reported as not measured otherwise.
"""

from __future__ import annotations

import json
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from _bench import import_ms, verdict

from finite_memory import ApproxTokenizer, Memory, Message
from finite_memory._values import loads_frozen
from finite_memory.stores._base import trusted_message

BUDGET = 1000
SMALL, LARGE = 1_000, 50_000
TURNS_PER_ROUND = 50
ROUNDS = 6


def filled_memory(messages: int) -> Memory:
    memory = Memory("sliding", max_tokens=BUDGET, reserve_output=0)
    batch = []
    for i in range(messages // 2):
        batch.append(Message("user", f"message {i}: what do you think about item {i % 97} and the weather?"))
        batch.append(Message("assistant", f"reply {i}: item {i % 89} is fine, the weather is mild today."))
    memory.extend(batch)
    return memory


def time_turns(memory: Memory, turns: int) -> float:
    """Median seconds of one turn: add the user message, add the reply, build a context."""
    times = []
    for i in range(turns):
        start = time.perf_counter()
        memory.add("user", f"new question {i} about item {i % 13}?")
        memory.add("assistant", f"new answer {i}, item {i % 11} is fine.")
        memory.context(query=f"item {i % 13}")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_naive_turns(history: list[Message], turns: int) -> float:
    """The reference approach (and LangChain's trim_messages): recount the whole history each turn."""
    tokenizer = ApproxTokenizer()
    times = []
    for i in range(turns):
        start = time.perf_counter()
        history.append(Message("user", f"new question {i} about item {i % 13}?"))
        history.append(Message("assistant", f"new answer {i}, item {i % 11} is fine."))
        counts = [tokenizer.count_message(m) for m in history]
        kept, room = [], BUDGET - tokenizer.per_prompt
        for message, count in zip(reversed(history), reversed(counts), strict=True):
            if count > room:
                break
            kept.append(message)
            room -= count
        kept.reverse()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_langchain_turns(history: list[Message], turns: int) -> float | None:
    """LangChain's ``trim_messages`` (with its ``count_tokens_approximately``) on the same history, per turn.

    ``None`` when ``langchain-core`` is not installed. Converting the history happens
    once, outside the timing; each turn converts only its two new messages.
    """
    try:
        from langchain_core.messages import AIMessage, HumanMessage
        from langchain_core.messages.utils import count_tokens_approximately, trim_messages
    except ImportError:
        return None
    messages = [HumanMessage(m.content) if m.role == "user" else AIMessage(m.content) for m in history]
    times = []
    for i in range(turns):
        start = time.perf_counter()
        messages.append(HumanMessage(f"new question {i} about item {i % 13}?"))
        messages.append(AIMessage(f"new answer {i}, item {i % 11} is fine."))
        trim_messages(messages, max_tokens=BUDGET, token_counter=count_tokens_approximately, strategy="last")
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def message_costs(repeats: int = 20_000, rounds: int = 7) -> dict[str, float]:
    """Best per-call seconds, rounds alternating between the cases: a validated user message with meta,
    an assistant message with a tool call, and a store row rebuilt from its JSON meta column (flat, and
    holding a list) with ``loads_frozen`` and with ``json.loads`` (the path before it).
    """
    flat = {"dia_id": "D12:4", "date_time": "1:56 pm on 8 May, 2023"}
    listy = {**flat, "tags": ["travel", "family"]}
    call = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}
    text = "I moved to Lisbon in May, near the river; the 28 tram stops at the corner."

    def row(loads: Callable[[str], Any], meta: dict[str, Any]) -> Callable[[], object]:
        column = json.dumps(meta, ensure_ascii=False)
        return lambda: trusted_message("user", text, None, None, None, loads(column), 7, 3)

    cases: dict[str, Callable[[], object]] = {
        "user": lambda: Message("user", text, meta=flat),
        "tool call": lambda: Message("assistant", "", tool_calls=[call]),
        "row flat": row(loads_frozen, flat),
        "row flat, json.loads": row(json.loads, flat),
        "row list": row(loads_frozen, listy),
        "row list, json.loads": row(json.loads, listy),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, work in cases.items():
            best[name] = min(best[name], timeit.timeit(work, number=repeats) / repeats)
    return best


def langchain_version() -> str:
    from importlib.metadata import version

    return version("langchain-core")


def main() -> None:
    print(f"== per-turn cost, sliding policy, {BUDGET}-token budget ==")
    small, large = filled_memory(SMALL), filled_memory(LARGE)
    naive_history = list(large.messages)
    langchain_history = list(large.messages)
    small_t, large_t, naive_t, langchain_t = [], [], [], []
    for _ in range(ROUNDS):
        small_t.append(time_turns(small, TURNS_PER_ROUND))
        large_t.append(time_turns(large, TURNS_PER_ROUND))
        naive_t.append(time_naive_turns(naive_history, 3))
        langchain = time_langchain_turns(langchain_history, 3)
        if langchain is not None:
            langchain_t.append(langchain)
    s, lg, nv = statistics.median(small_t), statistics.median(large_t), statistics.median(naive_t)
    print(f"add+add+context per turn at {SMALL:>6,} messages: {s * 1e6:8.1f} us")
    print(f"add+add+context per turn at {LARGE:>6,} messages: {lg * 1e6:8.1f} us")
    print(f"flatness ratio (50k / 1k): {lg / s:.2f}x   (target <= 1.5x)  {verdict(lg / s <= 1.5)}")
    print(f"naive recount per turn at {LARGE:,} messages: {nv * 1e3:8.2f} ms")
    print(f"speed-up over naive at {LARGE:,}: {nv / lg:,.0f}x   (target >= 100x)  {verdict(nv / lg >= 100)}")
    if langchain_t:
        lc = statistics.median(langchain_t)
        print(
            f"LangChain trim_messages per turn at {LARGE:,} messages: {lc * 1e3:8.2f} ms  "
            f"(langchain-core {langchain_version()}, count_tokens_approximately, measured in this run)"
        )
        print(f"speed-up over trim_messages at {LARGE:,}: {lc / lg:,.0f}x   (report)")
    else:
        print("LangChain trim_messages: not measured (langchain-core is not installed)")

    print("\n== validating a message (best of 7 alternating rounds x 20,000) ==")
    cost = message_costs()
    print(f"Message('user', text, meta=...):            {cost['user'] * 1e6:6.2f} us  (target: add well under 1 ms)")
    print(f"Message('assistant', '', tool_calls=[...]): {cost['tool call'] * 1e6:6.2f} us")
    for shape in ("flat", "list"):
        ours, before = cost[f"row {shape}"], cost[f"row {shape}, json.loads"]
        print(
            f"store row -> read-only Message, meta {shape:<5}:  {ours * 1e6:6.2f} us  (json.loads row as before: "
            f"{before * 1e6:.2f} us; ratio {ours / before:.2f}x, target <= 1.0x)  {verdict(ours <= before)}"
        )

    print("\n== import cost (best of 15) ==")
    bare = import_ms("pass")
    core = import_ms("import finite_memory")
    full = import_ms("from finite_memory import Memory, Chat; Memory().context()")
    print(f"bare interpreter:                 {bare:6.1f} ms")
    print(
        f"import finite_memory:             {core:6.1f} ms  (+{core - bare:.1f} ms; target <= 15 ms)  "
        f"{verdict(core - bare <= 15)}"
    )
    print(f"import Memory, Chat + 1 context:  {full:6.1f} ms  (+{full - bare:.1f} ms)")


if __name__ == "__main__":
    main()
