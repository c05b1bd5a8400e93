"""The sliding window: the newest whole turns that fit, after optional sink turns."""

from __future__ import annotations

from dataclasses import dataclass

from .._turns import Turn
from ._base import PolicyInput
from ._layout import Layout
from ._options import check_ints


@dataclass
class Sliding(Layout):
    """Keep the newest whole turns that fit the budget.

    The window grows by one turn a turn until the budget is hit, then drops in one step
    to the newest turns that fit in ``low_water`` of the budget, and grows again from
    there: its oldest turn stays put for many turns, so the prompt keeps the same
    beginning and a prefix cache of it stays valid. ``low_water=None`` slides one turn
    at a time instead (every context holds as many of the newest turns as fit).

    Options:
        sink_turns: how many of the first turns to keep whatever their age (the
            opening of a conversation often states its purpose). Default 0.
        recent_turns, low_water: as every policy (see :class:`~finite_memory.policies.Layout`).
    """

    name = "sliding"
    sink_turns: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, ("sink_turns",), 0)

    def pinned(self, view: PolicyInput) -> list[Turn]:
        """The first ``sink_turns`` turns that fit the budget together."""
        kept: list[Turn] = []
        room = view.budget
        for turn in view.turns[: self.sink_turns]:
            room -= view.tokens(turn)
            if room < 0:
                break
            kept.append(turn)
        return kept
