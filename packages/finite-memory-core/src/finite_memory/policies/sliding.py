"""The sliding window: the newest whole turns that fit, after optional sink turns."""

from __future__ import annotations

from dataclasses import dataclass

from ._base import Policy, PolicyInput, Selection


@dataclass
class Sliding(Policy):
    """Keep the newest whole turns that fit the budget.

    Options:
        sink_turns: how many of the first turns to keep whatever their age (the
            opening of a conversation often states its purpose). Default 0.
    """

    name = "sliding"
    sink_turns: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.sink_turns, int) or self.sink_turns < 0:
            raise ValueError(f"sink_turns must be an int >= 0, got {self.sink_turns!r}")

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
        for index in range(len(view.turns) - 1, sinks - 1, -1):
            turn = view.turns[index]
            cost = view.tokens(turn)
            if cost > room:
                break
            kept.append(turn)
            room -= cost
        return Selection(turns=kept)
