"""The rolling summary: a bounded summary of evicted turns, then the most recent turns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..summarizers import Summarizer
from ._base import Policy, PolicyInput, Selection
from ._options import check_ints, check_number
from ._plugins import resolve, saved_name
from ._summary import RunningSummary


@dataclass
class RollingSummary(Policy):
    """Keep a bounded running summary of the turns that left the window, then the newest turns.

    The summary goes first (a system message right after the pinned ones) and its cost
    never passes ``summary_tokens`` nor half the budget; the newest whole turns fill the
    rest. Turns are folded into the summary as they leave the recent window, with
    hysteresis: when one must go, the oldest ``hysteresis`` share of the window goes with
    it, so the summarizer runs once every few turns, not every turn. The summary is state
    the archive cannot rebuild cheaply: :meth:`state` keeps it in checkpoints and stores.
    The summary moves on when a context is built (where the window ends depends on the
    budget), and a durable store writes it with the next message added.

    Options:
        summarizer: a registered summarizer name (``"extractive"``, the default, or
            ``"model"`` with ``finite-memory-hf``) or an object with ``summarize``. An
            instance saves in a checkpoint by its registered ``name`` only.
        summary_tokens: the most tokens the summary message may cost. Default 256.
        hysteresis: the share of the recent window folded ahead of need, in [0, 0.9].
            Default 0.5.
        chunk_tokens: the most conversation text handed to the summarizer in one call.
            Default 2,048.
    """

    name = "rolling_summary"
    summarizer: str | Summarizer = "extractive"
    summary_tokens: int = 256
    hysteresis: float = 0.5
    chunk_tokens: int = 2048
    _summary: RunningSummary = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_ints(self, ("summary_tokens", "chunk_tokens"), 16)
        check_number(self, "hysteresis", 0, 0.9)
        self._summary = RunningSummary(
            resolve("summarizers", self.summarizer, Summarizer, "summarize(previous, evicted, max_tokens, count)"),
            self.summary_tokens,
            self.chunk_tokens,
        )

    @property
    def summary(self) -> RunningSummary:
        """The running summary (its ``text``, the ``covered`` turn, summarizer ``calls``)."""
        return self._summary

    def select(self, view: PolicyInput) -> Selection:
        turns, counter, budget = view.turns, view.counter, view.budget
        summary = self._summary
        reserve = min(self.summary_tokens, budget // 2)
        room = budget if summary.covered < 0 else budget - reserve
        start, used = _window(view, len(turns), room)
        if summary.covered < 0 and start == 0:
            return Selection(turns=list(turns))  # everything fits: nothing to summarize yet
        if room == budget:
            room = budget - reserve
            start, used = _window(view, len(turns), room)
        summary.advance(turns, start, int(room * (1 - self.hysteresis)), counter)
        message, cost = summary.message(reserve, counter)
        older, _ = _window(view, start, budget - cost - used)  # room the summary left goes to older turns
        return Selection(
            turns=list(turns[older:]), prefix=[message] if message else [], summary_tokens=cost if message else 0
        )

    def options(self) -> dict[str, Any]:
        options = super().options()
        options["summarizer"] = saved_name("summarizers", self.summarizer)
        return options

    def state(self) -> dict[str, Any]:
        return self._summary.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self._summary.load_state(state)


def _window(view: PolicyInput, stop: int, room: int) -> tuple[int, int]:
    """The first index of the newest whole turns of ``view.turns[:stop]`` fitting ``room``, and their cost."""
    start, used = stop, 0
    while start > 0:
        cost = view.tokens(view.turns[start - 1])
        if used + cost > room:
            break
        used += cost
        start -= 1
    return start, used
