"""The hybrid policy: pinned, recent, retrieved and summarized history under one budget."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .._message import Message
from .._turns import Turn
from ..embedders import Embedder
from ..summarizers import Summarizer
from ._base import Policy, PolicyInput, Selection
from ._knapsack import knapsack
from ._options import check_ints, check_number
from ._plugins import resolve, saved_name
from ._summary import RunningSummary
from .semantic import Semantic

_SHARES = ("pinned_share", "recent_share", "summary_share")


@dataclass
class Hybrid(Policy):
    """Pinned turns, the newest turns, retrieved turns and a running summary, in one budget.

    Each part has a share of the budget: ``pinned_share`` for pinned turns (the first
    ``sink_turns`` turns and any turn with a message whose ``meta[pin_key]`` is true),
    ``recent_share`` for the newest turns, ``summary_share`` for a running summary of
    the turns older than the recent window (the ``rolling_summary`` machinery), and
    the rest for turns retrieved for the query (the ``semantic`` machinery: BM25 and
    embeddings fused by RRF, MMR, neighbours). Retrieved turns are packed by a 0/1
    knapsack over whole turns that maximises their total value within the room left
    (a hit's value is its relevance times ``1 / (1 + its place in the MMR order)``, a
    neighbour's half its hit's), so several short relevant turns can beat one long
    one. A part that needs less than its share leaves the rest to retrieval, and
    what retrieval leaves goes to more recent turns. Session dates are marked as in
    ``semantic``. The summary is state: checkpoints keep it.

    Options:
        pinned_share, recent_share, summary_share: shares of the budget, each in
            [0, 1], summing to at most 1; retrieval gets the rest. Defaults 0.1, 0.05,
            0.05: the turn being answered is always in the context, and retrieval is the
            part that carries what the query needs, so the fixed parts start small (on
            the LoCoMo dev split at 1,024 tokens, 0.1 / 0.1 for recent / summary cost
            0.018 of evidence recall). Raise them for more continuity.
        sink_turns: how many of the first turns are pinned. Default 0.
        pin_key: the ``meta`` key that pins a message's turn. Default ``"pinned"``.
        summary_tokens: the most tokens the stored summary may cost. Default 256.
        summarizer, chunk_tokens, hysteresis: as in ``rolling_summary``.
        embedder, neighbours, mmr_lambda, candidates, dense_pool, dense_weight,
            date_key: as in ``semantic``.
    """

    name = "hybrid"
    pinned_share: float = 0.1
    recent_share: float = 0.05
    summary_share: float = 0.05
    sink_turns: int = 0
    pin_key: str = "pinned"
    summary_tokens: int = 256
    summarizer: str | Summarizer = "extractive"
    chunk_tokens: int = 2048
    hysteresis: float = 0.5
    embedder: str | Embedder = "hashing"
    neighbours: int = 1
    mmr_lambda: float = 0.85
    candidates: int = 16
    dense_pool: int = 512
    dense_weight: float | None = None
    date_key: str | None = "date_time"
    _pinned: set[int] = field(init=False, repr=False, compare=False, default_factory=set)

    def __post_init__(self) -> None:
        for option in _SHARES:
            value = getattr(self, option)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"{option} must be a number in [0, 1], got {value!r}")
        if sum(getattr(self, option) for option in _SHARES) > 1 + 1e-9:
            raise ValueError("pinned_share + recent_share + summary_share must be at most 1")
        check_ints(self, ("sink_turns",), 0)
        if not isinstance(self.pin_key, str) or not self.pin_key:
            raise ValueError(f"pin_key must be a non-empty string, got {self.pin_key!r}")
        check_ints(self, ("summary_tokens", "chunk_tokens"), 16)
        check_number(self, "hysteresis", 0, 0.9)
        self._retrieval = Semantic(
            embedder=self.embedder,
            recent_turns=0,
            neighbours=self.neighbours,
            mmr_lambda=self.mmr_lambda,
            candidates=self.candidates,
            dense_pool=self.dense_pool,
            dense_weight=self.dense_weight,
            date_key=self.date_key,
        )
        summarizer = resolve(
            "summarizers", self.summarizer, Summarizer, "summarize(previous, evicted, max_tokens, count)"
        )
        self._summary = RunningSummary(summarizer, self.summary_tokens, self.chunk_tokens)

    @property
    def summary(self) -> RunningSummary:
        """The running summary (its ``text`` and the newest turn it ``covered``)."""
        return self._summary

    def options(self) -> dict[str, Any]:
        options = super().options()
        options["embedder"] = self._retrieval.options()["embedder"]
        options["summarizer"] = saved_name("summarizers", self.summarizer)
        return options

    def state(self) -> dict[str, Any]:
        return self._summary.state()

    def load_state(self, state: dict[str, Any]) -> None:
        self._summary.load_state(state)

    def on_add(self, turn: Turn, message: Message) -> None:
        self._retrieval.on_add(turn, message)
        if message.meta.get(self.pin_key) is True:
            self._pinned.add(turn.number)

    def on_remove(self, turns: Sequence[Turn]) -> None:
        self._retrieval.on_remove(turns)
        for turn in turns:
            self._pinned.discard(turn.number)

    def select(self, view: PolicyInput) -> Selection:
        turns, budget = view.turns, view.budget
        if not turns or budget <= 0:
            return Selection(turns=[])
        if self._summary.covered < 0 and _fits(turns, view, budget):
            kept = self._retrieval.dated(list(reversed(turns)), view, budget)
            if len(kept) == len(turns):
                return Selection(turns=kept)  # everything fits, dates included: nothing to choose
        wanted: list[Turn] = []
        taken: set[int] = set()
        left = budget

        def take(turn: Turn, room: int) -> int:
            nonlocal left
            cost = view.tokens(turn)
            if turn.number in taken or cost > min(room, left):
                return room
            wanted.append(turn)
            taken.add(turn.number)
            left -= cost
            return room - cost

        room = int(budget * self.pinned_share)
        for turn in self._pinned_turns(turns):
            room = take(turn, room)

        room = int(budget * self.recent_share)
        start = len(turns)
        while start > 0 and view.tokens(turns[start - 1]) <= min(room, left):
            start -= 1
            room = take(turns[start], room)

        message, cost = self._summarize(view, start, min(left, int(budget * self.summary_share)))
        left -= cost

        candidates: dict[int, tuple[float, Turn]] = {}
        for value, turn in self._retrieval.retrieve(view):
            if turn.number not in taken and value > candidates.get(turn.number, (0.0, turn))[0]:
                candidates[turn.number] = (value, turn)
        items = sorted(candidates.values(), key=lambda item: (-item[0], item[1].number))
        costs = [view.tokens(turn) for _, turn in items]
        for i in knapsack([value for value, _ in items], costs, left):
            take(items[i][1], left)
        for _, turn in items:  # room the knapsack's rounding left: the next best candidates that fit
            take(turn, left)

        for i in range(start - 1, -1, -1):  # what is still left: the turns before the recent window
            turn = turns[i]
            if turn.number not in taken:
                if view.tokens(turn) > left:
                    break
                take(turn, left)
        kept = self._retrieval.dated(wanted, view, budget - cost)
        return Selection(turns=kept, prefix=[message] if message else [], summary_tokens=cost)

    def _pinned_turns(self, turns: Sequence[Turn]) -> list[Turn]:
        """The first ``sink_turns`` turns, then the turns pinned through ``meta``, oldest first."""
        first = list(turns[: self.sink_turns])
        numbers = {t.number for t in first}
        index = self._retrieval.index.turns
        lo, hi = turns[0].number, turns[-1].number
        return first + [index[n] for n in sorted(self._pinned) if lo <= n <= hi and n not in numbers and n in index]

    def _summarize(self, view: PolicyInput, start: int, room: int) -> tuple[Message | None, int]:
        """Fold the turns before the recent window into the summary; its message within ``room``."""
        if room <= 0 or start <= 0:
            return None, 0
        self._summary.advance(view.turns, start, int(room * (1 - self.hysteresis)), view.counter)
        message, cost = self._summary.message(min(room, self.summary_tokens), view.counter)
        return (message, cost) if message is not None and cost <= room else (None, 0)


def _fits(turns: Sequence[Turn], view: PolicyInput, budget: int) -> bool:
    """Whether all of ``turns`` fit ``budget`` (stops counting as soon as they do not)."""
    for turn in reversed(turns):
        budget -= view.tokens(turn)
        if budget < 0:
            return False
    return True
