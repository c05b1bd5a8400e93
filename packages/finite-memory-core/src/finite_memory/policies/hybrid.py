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

#: Hybrid's default for the tokens retrieved per query where the window keeps the rest (``semantic`` alone takes
#: the whole budget): about what a question needs, 15 to 20 lines with their date marks. On the LoCoMo dev split it
#: keeps 64 % of a 2,048-token prompt unchanged from one turn to the next (median) at 0.757 evidence recall.
RETRIEVAL_TOKENS = 650

#: Hybrid's default ``match_share``: a query whose best turn holds at least half its weight retrieves in full.
MATCH_SHARE = 0.5

#: The options every built-in policy shares (the layout engine's).
_LAYOUT = frozenset(f.name for f in fields(Layout) if f.init)


def own_options(policy: type[Layout]) -> frozenset[str]:
    """The options a built-in policy adds to the layout engine's."""
    return frozenset(f.name for f in fields(policy) if f.init) - _LAYOUT


@dataclass(init=False)
class Hybrid(Layout):
    """Pinned turns, a running summary, the newest turns and retrieved messages, in one budget.

    Composed of the other policies rather than a copy of them: messages are retrieved
    by a :class:`Semantic` policy (BM25 and embeddings fused by RRF, MMR, the lines
    around each hit, a knapsack over single messages, session dates) and the turns that
    leave the context are folded into the running summary of a :class:`RollingSummary`
    policy. Any option of those two goes to them (``Hybrid(embedder="minilm",
    summary_tokens=128)``), or give them built (``Hybrid(semantic=Semantic(...),
    rolling_summary=RollingSummary(...))``).

    The context holds, in this order: the pinned turns (the first ``sink_turns`` turns
    and any turn with a message whose ``meta[pin_key]`` is true) within
    ``pinned_share`` of the budget, the summary, the layout engine's window (the newest
    ``recent_turns`` turns always, grown by appending and evicted in low-water steps),
    then what was retrieved for this query (see :class:`~finite_memory.policies.Layout`).
    How the budget is shared depends on its size against ``retrieval_tokens``:

    - where ``retrieval_tokens`` is at most half the budget, retrieval takes at most
      that, the summary at most ``summary_share``, and the window keeps the rest, so
      most of the prompt is the same from one turn to the next and a prefix cache serves
      it. A query takes its whole retrieval room only when the best turn it finds holds
      at least ``match_share`` of its weight (see :meth:`TurnIndex.match
      <finite_memory.policies._retrieval.TurnIndex.match>`), and a proportional part of
      it below that: chit-chat keeps the tail short, a real question gets it all.
    - at smaller budgets a window of what is left could not stay in place for more than
      a turn or two (a prefix cache would gain nothing from it): retrieval takes all the
      room the recent turns leave, and there is no summary (it would take room from the
      evidence a question needs).

    Measured on the LoCoMo dev split, defaults (evidence recall of questions asked at
    the end / median prefix reuse of a chat replay): 0.765 / 0.00 at 1,024 tokens,
    0.749 / 0.49 at 1,536, 0.757 / 0.64 at 2,048, 0.777 / 0.83 at 4,096. At 2,048,
    ``match_share=None`` gives 0.761 / 0.58, ``retrieval_tokens=800`` 0.774 / 0.56 and
    ``retrieval_tokens=600`` 0.741 / 0.66. The summary is state: checkpoints keep it.

    Options:
        retrieval_tokens: the most tokens retrieval takes where that is at most half the
            budget (above, the room the recent turns leave). Default 650.
        match_share: the share of a query's weight its best match must hold for
            retrieval to take its whole room, in a budget where the window keeps the
            rest; ``None`` (or 0) always takes it all. The match is lexical: with a
            neural embedder, ``None`` keeps more of what only the embedder finds
            (MiniLM at 2,048 tokens: 0.751 recall / 0.58 reuse against 0.735 / 0.64).
            Default 0.5.
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
    match_share: float | None = MATCH_SHARE
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
        match_share: float | None = MATCH_SHARE,
        semantic: Semantic | Mapping[str, Any] | None = None,
        rolling_summary: RollingSummary | Mapping[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self.recent_turns, self.low_water = recent_turns, low_water
        self.pinned_share, self.summary_share = pinned_share, summary_share
        self.sink_turns, self.pin_key, self.match_share = sink_turns, pin_key, match_share
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
        check_number(self, "match_share", 0, optional=True)
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

    def bounds_retrieval(self, budget: int) -> bool:
        """Whether retrieval takes at most ``retrieval_tokens`` of ``budget`` tokens and the window the rest."""
        cap = self.semantic.retrieval_tokens
        return cap is not None and 2 * cap <= budget

    def summary_room(self, budget: int) -> int:
        if not self.bounds_retrieval(budget):
            return 0
        return min(self.rolling_summary.summary_tokens, int(budget * self.summary_share))

    def query_room(self, view: PolicyInput) -> int:
        room = self.semantic.query_room(view)
        return room if not room or self.bounds_retrieval(view.budget) else view.budget

    def wanted(self, view: PolicyInput, room: int, taken: set[int]) -> list[Turn]:
        """What :class:`Semantic` retrieves, in a room scaled to the query's match where the window keeps the rest."""
        if self.match_share and view.query and self.bounds_retrieval(view.budget):
            match = self.semantic.index.match(view.query, view.turns[0].number, view.turns[-1].number)
            room = int(room * min(1.0, match / self.match_share))
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
