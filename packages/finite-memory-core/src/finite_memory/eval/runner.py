"""Replay conversations into a ``Memory`` and measure evidence recall, continuity, prefix reuse and latency.

The recall protocol: every line of a conversation is archived in order (speaker A as
``user``, speaker B as ``assistant``, ``"<speaker>: <text>"``, the session date in
``meta["date_time"]``); then each question of categories 1 to 4 builds
``context(query=question)`` with a context budget of ``budget`` tokens
(``max_tokens=budget, reserve_output=0``), and its recall is the share of its
evidence lines whose message is in ``ctx.included``. Evidence ids that name no line
of the conversation are left out; a question left with none is skipped
(:func:`skipped_questions` lists them, with the reason).

The chat protocol (:mod:`finite_memory.eval.chat`): the same conversation replayed into
a fresh memory as a live chat, each user line building its context before it is
archived; continuity and prefix reuse are measured on those contexts.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .chat import ChatFigures, replay_chat
from .locomo import dialogue

#: LoCoMo's question categories with an answer in the conversation.
CATEGORIES: dict[int, str] = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


@dataclass
class RunResult:
    """Recall, chat figures and latency of one policy at one budget over a dataset.

    ``by_category`` maps a category number to its mean recall; ``by_conversation``
    maps a sample id to its mean recall; ``overall`` is the mean over all questions.
    ``continuity`` is the share of the chat replay's user lines whose preceding lines
    were all in their context; ``prefix_reuse_median`` and ``prefix_reuse_mean`` are the
    share of a context's tokens in the longest common message prefix with the previous
    one; ``options`` are the policy options the run was given (the rest are the policy's
    defaults), JSON-ready: a value that is not JSON (a built embedder) shows as its repr.
    """

    policy: str
    budget: int
    overall: float
    by_category: dict[int, float]
    by_conversation: dict[str, float]
    questions: int
    add_ms: float
    context_ms: float
    counts: dict[int, int] = field(default_factory=dict)
    continuity: float = 0.0
    prefix_reuse_median: float = 0.0
    prefix_reuse_mean: float = 0.0
    options: dict[str, Any] = field(default_factory=dict)

    def spread(self) -> tuple[float, float, float]:
        """Min, median and max of the per-conversation recall."""
        values = list(self.by_conversation.values()) or [0.0]
        return min(values), statistics.median(values), max(values)

    def as_dict(self) -> dict[str, Any]:
        low, mid, high = self.spread()
        return {
            "policy": self.policy,
            "budget": self.budget,
            "overall": self.overall,
            "by_category": {CATEGORIES[c]: r for c, r in sorted(self.by_category.items())},
            "questions_by_category": {CATEGORIES[c]: n for c, n in sorted(self.counts.items())},
            "by_conversation": self.by_conversation,
            "conversation_min": low,
            "conversation_median": mid,
            "conversation_max": high,
            "questions": self.questions,
            "add_ms": self.add_ms,
            "context_ms": self.context_ms,
            "continuity": self.continuity,
            "prefix_reuse_median": self.prefix_reuse_median,
            "prefix_reuse_mean": self.prefix_reuse_mean,
            "options": self.options,
        }


@dataclass(frozen=True)
class Skipped:
    """A question that cannot be scored: its conversation, its text and why."""

    conversation: str
    question: str
    reason: str


def skipped_questions(samples: Sequence[dict[str, Any]]) -> list[Skipped]:
    """The questions :func:`evaluate` skips because none of their evidence names a line of the conversation."""
    out: list[Skipped] = []
    for index, sample in enumerate(samples):
        lines = {line.dia_id for line in dialogue(sample)}
        for qa in _questions(sample):
            ids = evidence_ids(qa)
            if any(i in lines for i in ids):
                continue
            reason = f"its evidence {', '.join(ids)} names no line of the conversation" if ids else "it has no evidence"
            out.append(Skipped(str(sample.get("sample_id", f"#{index}")), str(qa["question"]), reason))
    return out


def evidence_ids(qa: dict[str, Any]) -> list[str]:
    """A question's evidence line ids (LoCoMo sometimes joins two with ``;``)."""
    out: list[str] = []
    for item in qa.get("evidence") or ():
        out.extend(part for part in str(item).replace(";", " ").split() if part)
    return out


def evaluate(
    samples: Sequence[dict[str, Any]],
    policy: str,
    budget: int,
    *,
    progress: Callable[[int, int, str], None] | None = None,
    **policy_options: Any,
) -> RunResult:
    """Replay ``samples`` (LoCoMo conversations) into memories: recall at the end, and a chat replay.

    ``progress(done, total, label)`` is called after each question asked and each
    conversation's chat replay; ``total`` leaves out the :func:`skipped_questions`.
    """
    from .._memory import Memory

    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 32:
        raise ValueError(f"budget must be an int >= 32, got {budget!r}")
    total = sum(len(_questions(sample)) + 1 for sample in samples) - len(skipped_questions(samples))
    done = 0
    recalls: list[tuple[str, int, float]] = []
    add_time = context_time = 0.0
    adds = contexts = 0
    chat = ChatFigures()
    options = _json_ready(policy_options)
    for sample in samples:
        sample_id = str(sample.get("sample_id", f"#{len(recalls)}"))
        memory = Memory(policy, max_tokens=budget, reserve_output=0, **policy_options)
        where: dict[str, int] = {}
        for line in dialogue(sample):
            meta = {"dia_id": line.dia_id}
            if line.date_time:
                meta["date_time"] = line.date_time
            start = time.perf_counter()
            message = memory.add(line.role, line.content, meta=meta)
            add_time += time.perf_counter() - start
            adds += 1
            where[line.dia_id] = message.id  # type: ignore[assignment]
        for qa in _questions(sample):
            evidence = [where[e] for e in evidence_ids(qa) if e in where]
            if not evidence:
                continue
            done += 1
            if progress is not None:
                progress(done, total, sample_id)
            start = time.perf_counter()
            ctx = memory.context(query=str(qa["question"]))
            context_time += time.perf_counter() - start
            contexts += 1
            included = set(ctx.included)
            recalls.append((sample_id, int(qa["category"]), sum(e in included for e in evidence) / len(evidence)))
        memory.close()
        with Memory(policy, max_tokens=budget, reserve_output=0, **policy_options) as replay:
            chat.merge(replay_chat(replay, dialogue(sample)))
        done += 1
        if progress is not None:
            progress(done, total, f"{sample_id} (chat)")
    return RunResult(
        policy=policy,
        budget=budget,
        overall=_mean(r for _, _, r in recalls),
        by_category={c: _mean(r for _, cat, r in recalls if cat == c) for c in sorted({c for _, c, _ in recalls})},
        by_conversation={
            s: _mean(r for sid, _, r in recalls if sid == s) for s in dict.fromkeys(s for s, _, _ in recalls)
        },
        questions=len(recalls),
        add_ms=add_time * 1000 / max(1, adds),
        context_ms=context_time * 1000 / max(1, contexts),
        counts={c: sum(1 for _, cat, _ in recalls if cat == c) for c in sorted({c for _, c, _ in recalls})},
        continuity=chat.continuity,
        prefix_reuse_median=chat.reuse_median,
        prefix_reuse_mean=chat.reuse_mean,
        options=options,
    )


def _json_ready(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` for a JSON document: values that are not JSON (instances) as their repr."""
    import json

    out: dict[str, Any] = {}
    for key, value in options.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            value = repr(value)
        out[key] = value
    return out


def _questions(sample: dict[str, Any]) -> list[dict[str, Any]]:
    qa = sample.get("qa")
    if not isinstance(qa, list):
        raise ValueError(f"conversation {sample.get('sample_id', '?')!r} has no 'qa' list")
    return [q for q in qa if isinstance(q, dict) and q.get("category") in CATEGORIES and q.get("question")]


def _mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


class ProgressBar:
    """A one-line progress bar on a stream (stderr by default), redrawn in place with ``\\r``.

    It redraws only when the shown percentage or item changes, and clears its line at
    the end, so the table printed afterwards starts on a clean line.
    """

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self._shown: tuple[int, str] | None = None
        self._length = 0

    def __call__(self, done: int, total: int, item: str) -> None:
        percent = 100 * done // max(1, total)
        if (percent, item) == self._shown and done < total:
            return
        self._shown = (percent, item)
        filled = self.width * done // max(1, total)
        line = f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total} {item}"
        self.stream.write("\r" + line.ljust(self._length))
        self._length = max(self._length, len(line))
        if done >= total:
            self.stream.write("\r" + " " * self._length + "\r")
        self.stream.flush()


def load_dataset(spec: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Conversations from a LoCoMo-format JSON file, or ``"synthetic"`` for the seeded generator.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` saying what is
    wrong with one that is not LoCoMo-format JSON.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be an int >= 1, got {limit!r}")
    if spec == "synthetic":
        from .synthetic import generate_dataset

        return generate_dataset(limit or 5)
    import json
    from pathlib import Path

    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"no dataset file at {spec!r} (give a LoCoMo JSON file or 'synthetic')")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{spec}: not a JSON file ({exc})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise ValueError(f"{spec}: expected a list of LoCoMo conversations")
    for i, sample in enumerate(data):
        if not isinstance(sample, dict) or not isinstance(sample.get("conversation"), dict):
            raise ValueError(f"{spec}: item {i} is not a LoCoMo conversation (no 'conversation' object)")
        _questions(sample)
    return data[:limit] if limit else data
