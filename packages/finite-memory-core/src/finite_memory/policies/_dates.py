"""Session dates in a context: each run of kept turns from one session opens with its date.

Retrieved turns come from anywhere in a long history, so a question like "when did
she move?" needs the date the turn was said. The date is written in front of the
first message of a run of kept turns sharing that date (``[8 May, 2023] ...``); the
marked copy is what the context holds (the archive is untouched), and its cost is
counted like any other message, so the budget stays exact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .._turns import Turn
from ._base import PolicyInput


def dated(
    turns: Sequence[Turn], dates: Mapping[int, str], view: PolicyInput, cache: dict[int, Turn] | None = None
) -> tuple[list[Turn], int]:
    """``turns`` in order, each run of one date marked with it, and the tokens the marks add.

    ``cache`` keeps the marked copies made so far (by turn number), for callers that mark
    several selections in a row.
    """
    out = []
    extra = 0
    previous = None
    cache = {} if cache is None else cache
    for turn in sorted(turns, key=lambda t: t.number):
        date = dates.get(turn.number)
        if date is None or date == previous or not turn.messages:
            out.append(turn)
            previous = date if date is not None else previous
            continue
        marked = cache.get(turn.number)
        if marked is None:
            first = turn.messages[0]
            marked = Turn(turn.number, [first.with_content(f"[{date}] {first.content}"), *turn.messages[1:]])
            cache[turn.number] = marked
        extra += view.tokens(marked) - view.tokens(turn)
        out.append(marked)
        previous = date
    return out, extra


def fit_dated(ranked: list[Turn], dates: Mapping[int, str], view: PolicyInput, room: int) -> list[Turn]:
    """The turns of ``ranked`` (most wanted first) with their date marks, within ``room``.

    ``ranked`` already fits without marks; the least wanted turns are dropped until the
    marks fit too.
    """
    kept = list(ranked)
    cost = sum(view.tokens(t) for t in kept)
    cache: dict[int, Turn] = {}
    while kept:
        out, extra = dated(kept, dates, view, cache)
        if cost + extra <= room:
            return out
        cost -= view.tokens(kept.pop())
    return []
