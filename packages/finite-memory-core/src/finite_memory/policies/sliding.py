"""The sliding window: the newest whole turns that fit, after optional sink turns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .._turns import Turn
from ._base import Policy, PolicyInput, Selection
from ._options import check_ints


@dataclass
class Sliding(Policy):
    """Keep the newest whole turns that fit the budget.

    Options:
        sink_turns: how many of the first turns to keep whatever their age (the
            opening of a conversation often states its purpose). Default 0.
        low_water: ``None`` (the default) slides one turn at a time: every context
            holds as many of the newest turns as fit. A share of the budget between 0
            and 1 (``0.6``, say) makes the window grow until the budget is hit, then drop
            in one step to the newest turns that fit in ``low_water`` of the budget, and
            grow again from there. The window's oldest turn then stays put for many turns,
            so the prompt keeps the same beginning and a backend's KV cache of it stays
            valid (``finite-memory-hf`` reuses it). The budget always holds either way.
    """

    name = "sliding"
    sink_turns: int = 0
    low_water: float | None = None
    _start: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_ints(self, ("sink_turns",), 0)
        if self.low_water is not None and (
            isinstance(self.low_water, bool)
            or not isinstance(self.low_water, (int, float))
            or not 0 < self.low_water < 1
        ):
            raise ValueError(f"low_water must be None or a share of the budget between 0 and 1, got {self.low_water!r}")

    def select(self, view: PolicyInput) -> Selection:
        room = view.budget
        kept = []
        sinks = min(self.sink_turns, len(view.turns))
        for turn in view.turns[:sinks]:
            cost = view.tokens(turn)
            if cost > room:
                break
            kept.append(turn)
            room -= cost
        if self.low_water is None:
            kept += _newest(view, sinks, room)
            return Selection(turns=kept)
        window = self._window(view, sinks, room)
        if window is None:  # the budget is hit: drop to the low-water mark in one step
            window = _newest(view, sinks, int(room * self.low_water)) or _newest(view, sinks, room)[:1]
        # ``window`` is newest first; its last turn is the oldest one kept
        self._start = window[-1].number if window else None
        return Selection(turns=kept + window)

    def _window(self, view: PolicyInput, sinks: int, room: int) -> list[Turn] | None:
        """The turns from the window's oldest turn to the newest, or None when they overflow ``room``."""
        window: list[Turn] = []
        for index in range(len(view.turns) - 1, sinks - 1, -1):
            turn = view.turns[index]
            if self._start is not None and turn.number < self._start:
                break
            room -= view.tokens(turn)
            if room < 0:
                return None
            window.append(turn)
        return window

    def state(self) -> dict[str, Any]:
        """Where the low-water window starts (a turn number), so a reload keeps the same prompt."""
        return {"start": self._start} if self._start is not None else {}

    def load_state(self, state: dict[str, Any]) -> None:
        start = state.get("start")
        self._start = start if isinstance(start, int) and not isinstance(start, bool) else None


def _newest(view: PolicyInput, sinks: int, room: int) -> list[Turn]:
    """The newest turns after the sinks that fit ``room`` together, newest first."""
    kept = []
    for index in range(len(view.turns) - 1, sinks - 1, -1):
        turn = view.turns[index]
        cost = view.tokens(turn)
        if cost > room:
            break
        kept.append(turn)
        room -= cost
    return kept
