"""Evaluation documents for the report tests, from real runs of the evaluator on the seeded generator."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from finite_memory.eval.results import document
from finite_memory.eval.runner import evaluate, load_dataset, skipped_questions


@cache
def _run(policies: tuple[str, ...], budgets: tuple[int, ...]) -> dict[str, Any]:
    samples = load_dataset("synthetic", 2)
    results = [evaluate(samples, name, budget) for name in policies for budget in budgets]
    return document("synthetic", len(samples), results, skipped_questions(samples), {"policies": list(policies)})


def run_document(
    policies: tuple[str, ...] = ("sliding", "hybrid"), budgets: tuple[int, ...] = (256, 512)
) -> dict[str, Any]:
    """A fresh copy of a real run's document (callers may change it)."""
    return copy.deepcopy(_run(policies, budgets))


def with_chat_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """The document as it looks once eval also measures continuity and prefix reuse (fields of another change)."""
    for i, result in enumerate(doc["results"]):
        result["continuity"] = round(0.5 + 0.05 * i, 3)
        result["prefix_reuse_median"] = round(0.9 - 0.02 * i, 3)
        result["prefix_reuse_mean"] = round(0.8 - 0.02 * i, 3)
        result["options"] = {"low_water": 0.5} if result["policy"] == "sliding" else {}
    return doc
