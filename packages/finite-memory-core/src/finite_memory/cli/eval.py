"""``finite-memory eval``: evidence recall and latency of policies on LoCoMo-format conversations."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..eval.runner import CATEGORIES, ProgressBar, RunResult, Skipped, evaluate, load_dataset, skipped_questions
from ._args import at_least, flag, writable_file, write_output

#: Skipped questions listed one by one before the rest are only counted.
SHOWN_SKIPS = 10


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
    parser.add_argument("--dataset", help="a LoCoMo JSON file, or 'synthetic' for the seeded generator")
    parser.add_argument("--policy", default="semantic", help="policy names, comma-separated (default: semantic)")
    parser.add_argument("--budget", default="1024", help="context budgets in tokens, comma-separated (default: 1024)")
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="also write the results to this JSON file")
    parser.add_argument("--html", dest="html_out", metavar="OUT", help="also write a self-contained report page")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="compare two --json results instead of running (with --html: a side-by-side page)",
    )
    parser.add_argument("--limit", type=at_least(1), metavar="K", help="only the first K conversations")
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
        raise ValueError("argument --policy: needs at least one policy name")
    return names


def _budgets(text: str) -> list[int]:
    try:
        budgets = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"argument --budget: takes comma-separated integers, got {text!r}") from None
    if not budgets or any(b < 32 for b in budgets):
        raise ValueError(f"argument --budget: values must be integers >= 32, got {text!r}")
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
    json_out = writable_file(args.json_out, "--json") if args.json_out else None  # fail now, not after the run
    html_out = writable_file(args.html_out, "--html") if args.html_out else None
    if args.compare:
        if json_out:
            raise ValueError("argument --json: not allowed with --compare (its inputs are JSON results already)")
        return _compare(args.compare, html_out)
    if args.dataset is None:
        raise ValueError("argument --dataset: required (or --compare A B)")
    policies, budgets = _names(args.policy), _budgets(args.budget)
    with flag("--option"):
        options = _options(args.option)
    from .._registry import load_policy

    for name in policies:
        with flag("--policy"):
            load_policy(name, **options)  # an unknown name or option fails now, saying what is allowed
    with flag("--dataset"):
        samples = load_dataset(args.dataset, args.limit)
    skipped = skipped_questions(samples)
    _report_skips(skipped)
    results: list[RunResult] = []
    runs = [(name, budget) for name in policies for budget in budgets]
    for number, (name, budget) in enumerate(runs, 1):
        label = f"run {number} of {len(runs)}: {name}@{budget}"
        bar = None
        if not args.quiet and sys.stderr.isatty():
            bar = ProgressBar(label)
        elif not args.quiet:
            print(label, file=sys.stderr)  # a log, not a terminal: one line per run
        results.append(evaluate(samples, name, budget, progress=bar, **options))
    print(table(results, args.dataset, len(samples)))
    if json_out or html_out:
        from ..eval.report import render_report
        from ..eval.results import document

        settings: dict[str, Any] = {"policies": policies, "budgets": budgets, "policy_options": options}
        if args.limit:
            settings["limit"] = args.limit
        doc = document(args.dataset, len(samples), results, skipped, settings)
        if json_out:
            write_output(json_out, json.dumps(doc, indent=2) + "\n", "--json")
        if html_out:
            write_output(html_out, render_report(doc), "--html")
    return 0


def _report_skips(skipped: list[Skipped]) -> None:
    if not skipped:
        return
    print(f"skipping {len(skipped)} questions that cannot be scored:", file=sys.stderr)
    for item in skipped[:SHOWN_SKIPS]:
        print(f"  {item.conversation}: {item.question!r}: {item.reason}", file=sys.stderr)
    if len(skipped) > SHOWN_SKIPS:
        print(f"  ... and {len(skipped) - SHOWN_SKIPS} more", file=sys.stderr)


def _compare(paths: list[str], html_out: Path | None) -> int:
    from ..eval.report import comparison_table, render_comparison
    from ..eval.results import read_results

    with flag("--compare"):
        a, b = (read_results(path) for path in paths)
    print(comparison_table(a, b))
    if html_out:
        write_output(html_out, render_comparison(a, b), "--html")
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
