"""Policies compute on a draft: a context changes no policy state until the turn that uses it commits.

:func:`select_on_draft` runs a policy, puts back whatever state it changed and returns the
changed state, which a :class:`Draft` carries on the context built from it. The memory
commits it with the turn's messages (``Memory.extend(..., context=ctx)``) or at once for a
direct ``Memory.context()`` caller; a context that is never used (a failed turn) leaves the
summary, the window and every other part of the policy state as it was.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ._errors import PolicyTimeout
from .policies import Policy, PolicyInput, Selection, Sliding


@dataclass(frozen=True, slots=True)
class Draft:
    """A policy state computed for one context, to commit if the context is used."""

    owner: int  # id() of the memory that built it
    revision: int  # the memory's state revision it was computed from
    state: dict[str, Any]


def select_on_draft(
    policy: Policy, view: PolicyInput, max_policy_ms: float | None
) -> tuple[Selection, float, bool, dict[str, Any] | None]:
    """The policy's selection, its time in ms, whether it fell back, and the state it would commit.

    A policy past ``max_policy_ms`` (its own check, or the clock afterwards) falls back to a
    sliding window for this turn, and its draft is dropped. The returned state is ``None``
    when the policy changed nothing.
    """
    before = policy.state()
    start = time.perf_counter()
    if max_policy_ms is not None:
        view.deadline = start + max_policy_ms / 1000
    selection: Selection | None = None
    try:
        selection = policy.select(view)
    except PolicyTimeout:
        pass
    finally:
        after = policy.state()
        if after != before:
            policy.load_state(before)
    elapsed_ms = (time.perf_counter() - start) * 1000
    if selection is None or (max_policy_ms is not None and elapsed_ms > max_policy_ms):
        view.deadline = None
        return Sliding(low_water=None).select(view), elapsed_ms, True, None
    return selection, elapsed_ms, False, after if after != before else None
