"""Evidence recall of every core policy at 512 / 1,024 / 2,048 tokens, beside targets and anchors.

Run with ``python benchmarks/bench_recall.py [--quick] [--dataset FILE]``. It reads the
LoCoMo dev split from ``../shared/data/locomo/locomo-dev.json`` (next to the repo) when it
is there, and otherwise runs the seeded synthetic generator (no targets apply then).
Protocol: ``finite_memory.eval.runner`` (context budget = the figure, ``reserve_output=0``,
default tokenizer). Exits 0 even when a target is missed: it prints MISSED beside it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _bench import verdict

from finite_memory import plugins
from finite_memory.eval.runner import evaluate, load_dataset

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo" / "locomo-dev.json"
BUDGETS = (512, 1024, 2048)
TARGETS = {"semantic": (0.60, 0.70, 0.80), "hybrid": (0.65, 0.75, 0.85)}
#: Same protocol, all 10 LoCoMo conversations, 1,024 tokens (given by the project, not measured here).
ANCHORS = {"sliding window": 0.035, "plain BM25 over single turns": 0.642, "BM25 fused with MiniLM": 0.710}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two conversations, 1,024 tokens only")
    parser.add_argument("--dataset", default=None, help="a LoCoMo JSON file (default: the dev split if present)")
    args = parser.parse_args()
    source = args.dataset or (str(DEV) if DEV.is_file() else "synthetic")
    samples = load_dataset(source, 2 if args.quick else None)
    budgets = (1024,) if args.quick else BUDGETS
    on_dev = source != "synthetic"
    installed = plugins("policies")
    names = [n for n in ("sliding", "semantic", "hybrid", "importance", "rolling_summary") if n in installed]
    label = "LoCoMo dev split" if source == str(DEV) else source
    print(f"== evidence recall on {label}: {len(samples)} conversations, categories 1-4 ==")
    if not on_dev:
        print("(the LoCoMo dev split is absent: synthetic conversations, no targets apply)")
    print(f"{'policy':<16}" + "".join(f"{b:>8}" for b in budgets) + "   targets" + "   ms/add  ms/ctx")
    for name in names:
        start = time.perf_counter()
        results = [evaluate(samples, name, b) for b in budgets]
        cells = "".join(f"{r.overall:8.3f}" for r in results)
        verdicts = []
        if on_dev and name in TARGETS:
            for budget, result in zip(budgets, results, strict=True):
                target = TARGETS[name][BUDGETS.index(budget)]
                verdicts.append(f">={target:.2f} {verdict(result.overall >= target)}")
        add_ms = max(r.add_ms for r in results)
        ctx_ms = max(r.context_ms for r in results)
        print(
            f"{name:<16}{cells}   {' / '.join(verdicts) or '-':<10}   {add_ms:6.3f}  {ctx_ms:6.2f}"
            f"   ({time.perf_counter() - start:.0f} s)"
        )
        for budget, result in zip(budgets, results, strict=True):
            low, mid, high = result.spread()
            cats = "  ".join(f"{c}:{v:.3f}" for c, v in sorted(result.by_category.items()))
            print(
                f"    @{budget:<5} by category {cats}   per conversation min/median/max {low:.3f}/{mid:.3f}/{high:.3f}"
            )
    if on_dev:
        print("anchors at 1,024 tokens (all 10 conversations, same protocol): ", end="")
        print(", ".join(f"{k} {v:.3f}" for k, v in ANCHORS.items()))


if __name__ == "__main__":
    main()
