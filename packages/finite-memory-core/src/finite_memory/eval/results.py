"""Evaluation results as a JSON document: what ``finite-memory eval --json`` writes and ``--compare`` reads.

A document holds ``format``, ``version``, the ``dataset``, the number of ``conversations``,
when it was ``created``, the run's ``options``, the ``versions`` used, the ``skipped``
questions and, in ``results``, one entry per policy and budget (``RunResult.as_dict()``, plus
``continuity``, ``prefix_reuse_median``, ``prefix_reuse_mean`` and ``options`` where measured).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .runner import RunResult, Skipped

FORMAT = "finite-memory-eval"
VERSION = 1
_NUMBERS = (
    "overall",
    "add_ms",
    "context_ms",
    "conversation_min",
    "conversation_median",
    "conversation_max",
    "continuity",
    "prefix_reuse_median",
    "prefix_reuse_mean",
)


def document(
    dataset: str, conversations: int, results: Sequence[RunResult], skipped: Sequence[Skipped], options: dict[str, Any]
) -> dict[str, Any]:
    """The JSON document of a run: results, what was skipped, the options and the versions used."""
    from datetime import datetime, timezone

    return {
        "format": FORMAT,
        "version": VERSION,
        "dataset": dataset,
        "conversations": conversations,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "options": options,
        "versions": versions(sorted({r.policy for r in results})),
        "skipped": [asdict(item) for item in skipped],
        "results": [r.as_dict() for r in results],
    }


def versions(policies: Iterable[str]) -> dict[str, str]:
    """Python, the platform, core, and the distribution of every policy used that is not core's."""
    import platform

    from .. import __version__
    from .._registry import plugins

    found = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    found["finite-memory-core"] = __version__
    installed = plugins("policies")
    for name in policies:
        dist = installed[name].dist if name in installed else None
        if dist is not None:
            found[dist.name] = dist.version
    return found


def read_results(path: str) -> dict[str, Any]:
    """A results document written by ``finite-memory eval --json``; ``ValueError`` says what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read it as JSON ({exc})") from None
    check(data, path)
    return {**data, "source": path}


def check(doc: Any, where: str) -> None:
    """Raise ``ValueError`` unless ``doc`` has the shape of a results document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("results"), list) or not doc["results"]:
        raise ValueError(f"{where}: not a finite-memory eval result (no 'results' list)")
    for i, result in enumerate(doc["results"]):
        if not isinstance(result, dict):
            raise ValueError(f"{where}: result {i} is not an object")
        if not isinstance(result.get("policy"), str) or not is_int(result.get("budget")):
            raise ValueError(f"{where}: result {i} needs a 'policy' string and a 'budget' integer")
        for key in _NUMBERS:
            if (key == "overall" or key in result) and not is_number(result.get(key)):
                raise ValueError(f"{where}: result {i}: {key!r} must be a finite number, got {result.get(key)!r}")
        for key in ("by_category", "by_conversation", "options"):
            value = result.get(key, {})
            if not isinstance(value, dict) or (key != "options" and not all(map(is_number, value.values()))):
                raise ValueError(
                    f"{where}: result {i}: {key!r} must be an object" + (" of numbers" * (key != "options"))
                )


def result_key(result: dict[str, Any]) -> tuple[str, int, str]:
    """What identifies a result across runs: policy, budget and its options (as sorted JSON, ``""`` for none)."""
    options = result.get("options") or {}
    return result["policy"], int(result["budget"]), json.dumps(options, sort_keys=True) if options else ""


def keyed_results(doc: dict[str, Any]) -> dict[tuple[str, int, str], dict[str, Any]]:
    """A document's results by :func:`result_key`."""
    return {result_key(r): r for r in doc["results"]}


def union_of_keys(*runs: Sequence[dict[str, Any]]) -> list[tuple[str, int, str]]:
    """Every key in any of the result lists, by policy, options, then budget."""
    return sorted({result_key(r) for results in runs for r in results}, key=lambda k: (k[0], k[2], k[1]))


def key_label(key: tuple[str, int, str], budget: bool = True) -> str:
    """``"hybrid@1024 low_water=0.2"`` (without ``@budget`` when ``budget`` is false)."""
    policy, tokens, options = key
    text = policy + (f"@{tokens}" if budget else "")
    if options:
        text += " " + ", ".join(f"{k}={v}" for k, v in json.loads(options).items())
    return text


def result_label(result: dict[str, Any]) -> str:
    """:func:`key_label` of a result."""
    return key_label(result_key(result))


def run_name(doc: dict[str, Any]) -> str:
    """How a document is named on a page: the file it was read from, else its dataset."""
    return str(doc.get("source") or doc.get("dataset") or "?")


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
