"""``finite-memory eval``: evidence recall and latency of policies on LoCoMo-format conversations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..eval.runner import CATEGORIES, ProgressBar, RunResult, evaluate, load_dataset


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "eval",
        help="measure evidence recall, continuity and prefix reuse of policies on a LoCoMo-format dataset",
        description="Replay each conversation into a memory, ask each question (categories 1-4) with "
        "context(query=question) at each budget, and report the share of evidence lines in the context; "
        "then replay it as a chat (each user line builds its context before it is archived) and report "
        "continuity (user lines whose 6 preceding lines are all in the context) and prefix reuse (share of a "
        "context's tokens in the longest common message prefix with the previous one).",
    )
    parser.add_argument("--dataset", required=True, help="a LoCoMo JSON file, or 'synthetic' for the seeded generator")
    parser.add_argument("--policy", default="semantic", help="policy names, comma-separated (default: semantic)")
    parser.add_argument("--budget", default="1024", help="context budgets in tokens, comma-separated (default: 1024)")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="also write the results to this JSON file")
    parser.add_argument("--limit", type=int, metavar="K", help="only the first K conversations")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a policy option for every policy run, repeatable (--option recent_turns=2 --option low_water=0.6); "
        "values are read as JSON when they parse (numbers, true, null), else as text",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    parser.set_defaults(func=run)


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ValueError("--policy needs at least one policy name")
    return names


def _budgets(text: str) -> list[int]:
    try:
        budgets = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--budget takes comma-separated integers, got {text!r}") from None
    if not budgets or any(b < 32 for b in budgets):
        raise ValueError(f"--budget values must be integers >= 32, got {text!r}")
    return budgets


def _options(items: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--option takes KEY=VALUE, got {item!r}")
        try:
            options[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[key.strip()] = text
    return options


def run(args: argparse.Namespace) -> int:
    policies, budgets, options = _names(args.policy), _budgets(args.budget), _options(args.option)
    from .._registry import load_policy

    for name in policies:
        load_policy(name, **options)  # an unknown name or option fails now, saying what is allowed
    samples = load_dataset(args.dataset, args.limit)
    results: list[RunResult] = []
    for name in policies:
        for budget in budgets:
            bar = None if args.quiet else ProgressBar(f"{name}@{budget}")
            results.append(evaluate(samples, name, budget, progress=bar, **options))
    print(table(results, args.dataset, len(samples)))
    if args.json_out:
        document = {"dataset": args.dataset, "conversations": len(samples), "results": [r.as_dict() for r in results]}
        Path(args.json_out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json_out}", file=sys.stderr)
    return 0


def table(results: list[RunResult], dataset: str, conversations: int) -> str:
    """The results as a fixed-width text table, one row per policy and budget."""
    heads = ["policy", "budget", "recall", *(CATEGORIES[c] for c in CATEGORIES), "conv min/med/max"]
    heads += ["continuity", "reuse med/mean", "ms/add", "ms/ctx"]
    rows = []
    for r in results:
        low, mid, high = r.spread()
        cats = [f"{r.by_category[c]:.3f}" if c in r.by_category else "-" for c in CATEGORIES]
        rows.append(
            [
                r.policy,
                str(r.budget),
                f"{r.overall:.3f}",
                *cats,
                f"{low:.3f}/{mid:.3f}/{high:.3f}",
                f"{r.continuity:.3f}",
                f"{r.prefix_reuse_median:.3f}/{r.prefix_reuse_mean:.3f}",
                f"{r.add_ms:.3f}",
                f"{r.context_ms:.2f}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
    lines = [
        f"evidence recall on {dataset} ({conversations} conversations, {results[0].questions} questions); "
        "continuity and prefix reuse from a chat replay of them"
    ]
    lines.append("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)).rstrip())
    lines.extend("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
    return "\n".join(lines)
