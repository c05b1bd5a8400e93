"""The hybrid policy: pinned, recent, retrieved and summarized history under one budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .._message import Message
from .._turns import Turn
from ._base import PolicyInput
from ._layout import LOW_WATER, RECENT_TURNS, Layout
from ._options import check_ints, check_number
from ._summary import RunningSummary
from .rolling_summary import RollingSummary
from .semantic import Semantic

#: Hybrid's default for the turns retrieved per query (``semantic`` alone takes the whole budget): at
#: 1,024 tokens it leaves retrieval nearly all the room the recent turns leave, at 2,048 the recent
#: window keeps 60 % of the prompt unchanged from one turn to the next (LoCoMo dev, median).
RETRIEVAL_TOKENS = 600

#: The options every built-in policy shares (the layout engine's).
_LAYOUT = frozenset(f.name for f in fields(Layout) if f.init)


def own_options(policy: type[Layout]) -> frozenset[str]:
    """The options a built-in policy adds to the layout engine's."""
    return frozenset(f.name for f in fields(policy) if f.init) - _LAYOUT


@dataclass(init=False)
class Hybrid(Layout):
    """Pinned turns, a running summary, the newest turns and retrieved turns, in one budget.

    Composed of the other policies rather than a copy of them: turns are retrieved by
    a :class:`Semantic` policy (BM25 and embeddings fused by RRF, MMR, neighbours, a
    knapsack over whole turns, session dates) and the turns that leave the context are
    folded into the running summary of a :class:`RollingSummary` policy. Any option of
    those two goes to them (``Hybrid(embedder="minilm", summary_tokens=128)``), or give
    them built (``Hybrid(semantic=Semantic(...), rolling_summary=RollingSummary(...))``).

    The context holds, in this order: the pinned turns (the first ``sink_turns`` turns
    and any turn with a message whose ``meta[pin_key]`` is true) within
    ``pinned_share`` of the budget, the summary within ``summary_share``, then the
    layout engine's log: the newest ``recent_turns`` turns always, what was retrieved
    for this query and the turns already there, evicted in low-water steps (see
    :class:`~finite_memory.policies.Layout`). A part that needs less than its share
    leaves the rest to retrieval. The summary is state: checkpoints keep it.

    Options:
        pinned_share, summary_share: shares of the budget, each in [0, 1], summing to at
            most 1. Defaults 0.1 and 0.05.
        sink_turns: how many of the first turns are pinned. Default 0.
        pin_key: the ``meta`` key that pins a message's turn. Default ``"pinned"``.
        recent_turns, low_water: as every policy.
        semantic, rolling_summary: the composed policies, built or as option dicts;
            any other keyword option goes to the one that has it.
    """

    name = "hybrid"
    pinned_share: float = 0.1
    summary_share: float = 0.05
    sink_turns: int = 0
    pin_key: str = "pinned"
    semantic: Semantic = field(default_factory=Semantic)
    rolling_summary: RollingSummary = field(default_factory=RollingSummary)
    _pinned: set[int] = field(init=False, repr=False, compare=False, default_factory=set)

    def __init__(
        self,
        *,
        recent_turns: int = RECENT_TURNS,
        low_water: float | None = LOW_WATER,
        pinned_share: float = 0.1,
        summary_share: float = 0.05,
        sink_turns: int = 0,
        pin_key: str = "pinned",
        semantic: Semantic | Mapping[str, Any] | None = None,
        rolling_summary: RollingSummary | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.recent_turns, self.low_water = recent_turns, low_water
        self.pinned_share, self.summary_share = pinned_share, summary_share
        self.sink_turns, self.pin_key = sink_turns, pin_key
        self.semantic = _compose(Semantic, semantic, options, {"retrieval_tokens": RETRIEVAL_TOKENS})
        self.rolling_summary = _compose(RollingSummary, rolling_summary, options)
        if options:
            allowed = sorted(_LAYOUT | own_options(Hybrid) | own_options(Semantic) | own_options(RollingSummary))
            raise TypeError(f"unknown hybrid options: {', '.join(sorted(options))}; allowed: {', '.join(allowed)}")
        self._start, self._marked, self._pinned = None, {}, set()
        self.__post_init__()

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self, "pinned_share", 0, 1)
        check_number(self, "summary_share", 0, 1)
        if self.pinned_share + self.summary_share > 1 + 1e-9:
            raise ValueError("pinned_share + summary_share must be at most 1")
        check_ints(self, ("sink_turns",), 0)
        if not isinstance(self.pin_key, str) or not self.pin_key:
            raise ValueError(f"pin_key must be a non-empty string, got {self.pin_key!r}")

    @property
    def summary(self) -> RunningSummary:
        """The running summary (its ``text`` and the newest turn it ``covered``)."""
        return self.rolling_summary.summary

    @property
    def running_summary(self) -> RunningSummary:
        return self.rolling_summary.summary

    def options(self) -> dict[str, Any]:
        """Hybrid's own options and the composed policies' ones, flat (as the constructor takes them)."""
        own = _LAYOUT | own_options(Hybrid) - {"semantic", "rolling_summary"}
        options = {name: getattr(self, name) for name in own}
        for part in (self.semantic, self.rolling_summary):
            saved = part.options()
            options.update({name: saved[name] for name in own_options(type(part))})
        return options

    def on_add(self, turn: Turn, message: Message) -> None:
        self.semantic.on_add(turn, message)
        if message.meta.get(self.pin_key) is True:
            self._pinned.add(turn.number)

    def on_remove(self, turns: Sequence[Turn]) -> None:
        super().on_remove(turns)
        self.semantic.on_remove(turns)
        for turn in turns:
            self._pinned.discard(turn.number)

    def pinned(self, view: PolicyInput) -> list[Turn]:
        """The first ``sink_turns`` turns, then the turns pinned through ``meta``, within ``pinned_share``."""
        turns = view.turns
        first = list(turns[: self.sink_turns])
        numbers = {t.number for t in first}
        index = self.semantic.index.turns
        lo, hi = turns[0].number, turns[-1].number
        marked = [index[n] for n in sorted(self._pinned) if lo <= n <= hi and n not in numbers and n in index]
        room = int(view.budget * self.pinned_share)
        kept = []
        for turn in first + marked:
            cost = view.tokens(turn)
            if cost <= room:
                kept.append(turn)
                room -= cost
        return sorted(kept, key=lambda t: t.number)

    def summary_room(self, budget: int) -> int:
        return min(self.rolling_summary.summary_tokens, int(budget * self.summary_share))

    def query_room(self, view: PolicyInput) -> int:
        return self.semantic.query_room(view)

    def wanted(self, view: PolicyInput, room: int, taken: set[int]) -> list[Turn]:
        return self.semantic.wanted(view, room, taken)

    def dates(self) -> Mapping[int, str]:
        return self.semantic.dates()


def _compose(
    kind: type[Layout],
    given: Layout | Mapping[str, Any] | None,
    options: dict[str, Any],
    defaults: Mapping[str, Any] = {},
) -> Any:
    """A composed policy: built from its option dict plus the flat options that are its own (taken from ``options``).

    ``defaults`` are hybrid's own defaults for the composed policy's options.
    """
    mine = {name: options.pop(name) for name in own_options(kind) & options.keys()}
    if isinstance(given, kind):
        if mine:
            raise TypeError(f"{', '.join(sorted(mine))} go to the {kind.name} policy given built; set them there")
        return given
    if given is not None and not isinstance(given, Mapping):
        raise TypeError(f"{kind.name} must be a {kind.__name__} or a dict of its options, not {type(given).__name__}")
    return kind(**{**defaults, **(given or {}), **mine})
