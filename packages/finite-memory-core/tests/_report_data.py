"""Evaluation documents for the report tests, from real runs of the evaluator on the seeded generator."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from finite_memory.eval.results import document
from finite_memory.eval.runner import evaluate, load_dataset, skipped_questions


@cache
def _run(policies: tuple[str, ...], budgets: tuple[int, ...], options: str) -> dict[str, Any]:
    samples = load_dataset("synthetic", 2)
    given = json.loads(options)
    results = [evaluate(samples, name, budget, **given) for name in policies for budget in budgets]
    settings = {"policies": list(policies), "policy_options": given}
    return document("synthetic", len(samples), results, skipped_questions(samples), settings)


def run_document(
    policies: tuple[str, ...] = ("sliding", "hybrid"),
    budgets: tuple[int, ...] = (256, 512),
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A fresh copy of a real run's document (callers may change it); ``options`` go to every policy."""
    return copy.deepcopy(_run(policies, budgets, json.dumps(options or {}, sort_keys=True)))


def without_chat_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as a version of eval wrote it before it measured continuity and prefix reuse."""
    for result in doc["results"]:
        for key in ("continuity", "prefix_reuse_median", "prefix_reuse_mean", "options"):
            result.pop(key, None)
    return doc
