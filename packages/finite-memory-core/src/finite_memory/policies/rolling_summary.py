"""The rolling summary: a bounded summary of evicted turns, then the most recent turns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..summarizers import Summarizer
from ._layout import Layout
from ._options import check_ints
from ._plugins import resolve, saved_name
from ._summary import RunningSummary


@dataclass
class RollingSummary(Layout):
    """Keep a bounded running summary of the turns that left the window, then the newest turns.

    The summary goes first (a system message right after the pinned ones) and its cost
    never passes ``summary_tokens`` nor half the budget; the newest whole turns fill the
    rest. The window evicts in low-water steps (see :class:`~finite_memory.policies.Layout`),
    and the turns it drops are folded into the summary at that moment: the summarizer
    runs once per eviction, not every turn, and the summary (at the top of the prompt)
    changes only then. The summary is state the archive cannot rebuild cheaply:
    :meth:`state` keeps it in checkpoints and stores, and a turn that fails in ``Chat``
    does not advance it.

    Options:
        summarizer: a registered summarizer name (``"extractive"``, the default, or
            ``"model"`` with ``finite-memory-hf``) or an object with ``summarize``. An
            instance saves in a checkpoint by its registered ``name`` only.
        summary_tokens: the most tokens the summary message may cost. Default 256.
        chunk_tokens: the most conversation text handed to the summarizer in one call.
            Default 2,048.
        recent_turns, low_water: as every policy.
    """

    name = "rolling_summary"
    summarizer: str | Summarizer = "extractive"
    summary_tokens: int = 256
    chunk_tokens: int = 2048
    _summary: RunningSummary = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_ints(self, ("summary_tokens", "chunk_tokens"), 16)
        self._summary = RunningSummary(
            resolve("summarizers", self.summarizer, Summarizer, "summarize(previous, evicted, max_tokens, count)"),
            self.summary_tokens,
            self.chunk_tokens,
        )

    @property
    def summary(self) -> RunningSummary:
        """The running summary (its ``text``, the ``covered`` turn, summarizer ``calls``)."""
        return self._summary

    @property
    def running_summary(self) -> RunningSummary:
        return self._summary

    def summary_room(self, budget: int) -> int:
        return min(self.summary_tokens, budget // 2)

    def options(self) -> dict[str, Any]:
        options = super().options()
        options["summarizer"] = saved_name("summarizers", self.summarizer)
        return options
