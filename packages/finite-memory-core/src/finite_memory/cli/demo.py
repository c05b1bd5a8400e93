"""``finite-memory demo``: replay a long synthetic conversation and show what the memory keeps."""

from __future__ import annotations

import argparse

from .._memory import MIN_BUDGET, Memory
from ..eval.locomo import dialogue
from ..eval.synthetic import generate_conversation
from ._args import at_least, flag


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("demo", help="replay a synthetic conversation through a memory (no key, no download)")
    parser.add_argument("--policy", default="sliding", help="memory policy (default: sliding)")
    parser.add_argument(
        "--budget", type=at_least(MIN_BUDGET), default=512, help="context budget in tokens (default: 512)"
    )
    parser.add_argument("--sessions", type=at_least(1), default=12, help="sessions in the conversation (default: 12)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the conversation (default: 7)")
    parser.add_argument("--every", type=at_least(1), default=8, help="print one line every N turns (default: 8)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    sample = generate_conversation(args.seed, sessions=args.sessions)
    with flag("--policy"):
        memory = Memory(args.policy, max_tokens=args.budget, reserve_output=0)
    dia_of: dict[int, str] = {}
    print(f"policy={args.policy} budget={args.budget} tokens; {sum(1 for _ in dialogue(sample))} lines to replay\n")
    print(f"{'turn':>5} {'archived':>8} {'tokens':>7} {'kept turns':>11} {'policy ms':>9}  newest line")
    for line in dialogue(sample):
        message = memory.add(line.role, line.content, meta={"dia_id": line.dia_id, "date_time": line.date_time})
        dia_of[message.id] = line.dia_id  # type: ignore[index]
        if message.turn is not None and message.turn % args.every == 0 and line.role == "assistant":
            ctx = memory.context()
            kept = len({m.turn for m in ctx.messages if m.turn is not None})
            print(
                f"{message.turn:>5} {len(memory):>8} {ctx.tokens:>4}/{memory.budget:<4}"
                f"{kept:>9} {ctx.stats.policy_ms:>9.2f}  {line.content[:60]}"
            )
    print("\nQuestions about facts planted in the conversation:")
    found_total = 0
    for qa in sample["qa"]:
        ctx = memory.context(query=qa["question"])
        present = {dia_of[i] for i in ctx.included if i in dia_of}
        found = sum(1 for dia in qa["evidence"] if dia in present)
        found_total += found == len(qa["evidence"])
        mark = "kept " if found == len(qa["evidence"]) else "lost "
        print(f"  [{mark}] {qa['question']:<52} evidence {', '.join(qa['evidence'])}")
    print(f"\n{found_total}/{len(sample['qa'])} questions have all their evidence in a {memory.budget}-token context.")
    return 0
