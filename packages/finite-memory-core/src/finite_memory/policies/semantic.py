"""Retrieval: the turns that answer the current query, found by BM25 and embeddings."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._message import Message
from .._turns import Turn
from ..embedders import Embedder
from ._base import PolicyInput
from ._knapsack import knapsack
from ._layout import Layout
from ._options import check_ints, check_number
from ._plugins import resolve, saved_name
from ._retrieval import TurnIndex


@dataclass
class Semantic(Layout):
    """Keep the turns most relevant to the query, their neighbours, and the latest turns.

    Turns are ranked by BM25 over an incremental inverted index (a turn's own words,
    plus its neighbours' words at weight 0.15, so a reply is found through the question
    it answers) and by embedding similarity, the two rankings fused by reciprocal rank fusion, then reordered by
    maximal marginal relevance so near-duplicates do not crowd out other evidence.
    (The default ``hashing`` embedder declares a fusion weight of 0: fused, it lowered
    recall, so it serves MMR's similarity and the queries BM25 cannot match; a neural
    embedder fuses with its own weight.) Each hit brings the turns around it, first on
    the side of its best-matching line (an exchange spans turns). The hits and their
    neighbours are packed by a 0/1 knapsack over whole turns that maximises their total
    value within the room the newest ``recent_turns`` turns leave (a hit's value is its
    relevance times ``1 / (1 + its place in the MMR order)``, a neighbour's half its
    hit's), so several short relevant turns can beat one long one; the layout engine
    places them after the turns already in the context, and fills what is left with
    the newest turns when it rebuilds. Each run of kept turns from one session opens
    with that session's date, taken from the messages' ``meta``, as ``[date] `` in front
    of its first message: the context's copy is marked, the archive is not, and the
    marks are counted in the budget. With no query, this is a sliding window.

    Cost: a message is analysed and embedded once (embeddings in batches); a query
    costs its own embedding, a walk over at most 3,000 postings, at most ``dense_pool``
    dot products and an MMR over ``candidates`` hits, whatever the archive's length.

    Options:
        embedder: an embedder name registered in ``finite_memory.embedders``
            (``"hashing"``, or ``"minilm"`` with ``finite-memory-hf``), or an
            :class:`~finite_memory.embedders.Embedder` instance with a registered
            ``name`` (a checkpoint saves the name). Default ``"hashing"``.
        neighbours: turns on each side of a hit brought along when they fit. Default 1.
        mmr_lambda: relevance against diversity, 0 to 1; 1 is pure relevance. Default 0.85.
        candidates: how many fused hits are considered for the context. Default 16.
        dense_pool: the most turns scored by embedding per query; beyond that size the
            embedder re-ranks the best lexical candidates only. Default 512.
        dense_weight: the embedding ranking's weight in the fusion (BM25's is 1);
            ``None`` takes the embedder's ``fusion_weight`` attribute, or 1 when it has
            none. Whatever the weight, the embedding ranking is used alone when no
            query word is in the index. Default ``None``.
        date_key: the ``meta`` key of a message's session date; ``None`` leaves dates
            out of the context. Default ``"date_time"``.
        recent_turns, low_water: as every policy.
    """

    name = "semantic"
    embedder: str | Embedder = "hashing"
    neighbours: int = 1
    mmr_lambda: float = 0.85
    candidates: int = 16
    dense_pool: int = 512
    dense_weight: float | None = None
    date_key: str | None = "date_time"
    retrieval_tokens: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.retrieval_tokens is not None:
            check_ints(self, ("retrieval_tokens",), 0)
        check_ints(self, ("neighbours",), 0)
        check_ints(self, ("candidates", "dense_pool"), 1)
        check_number(self, "mmr_lambda", 0, 1)
        check_number(self, "dense_weight", 0, optional=True)
        if self.date_key is not None and not isinstance(self.date_key, str):
            raise TypeError(f"date_key must be a str or None, got {self.date_key!r}")
        embedder = resolve("embedders", self.embedder, Embedder, "dim and embed(texts) -> list[list[float]]")
        self._index = TurnIndex(embedder, dense_pool=self.dense_pool, date_key=self.date_key or "")
        weight = self.dense_weight if self.dense_weight is not None else getattr(embedder, "fusion_weight", 1.0)
        self._dense_weight = float(weight)

    @property
    def index(self) -> TurnIndex:
        """The retrieval index (BM25 postings, embeddings, session dates), in step with the archive."""
        return self._index

    def options(self) -> dict[str, Any]:
        options = super().options()
        options["embedder"] = saved_name("embedders", self.embedder)
        return options

    def on_add(self, turn: Turn, message: Message) -> None:
        self._index.add(turn, message)

    def on_remove(self, turns: Sequence[Turn]) -> None:
        super().on_remove(turns)
        self._index.remove(turns)

    def dates(self) -> Mapping[int, str]:
        return self._index.dates if self.date_key is not None else {}

    def query_room(self, view: PolicyInput) -> int:
        """``retrieval_tokens`` (the whole budget when None) with a query; none without one (the window takes it)."""
        if not view.query or not view.query.strip():
            return 0
        return view.budget if self.retrieval_tokens is None else self.retrieval_tokens

    def wanted(self, view: PolicyInput, room: int, taken: set[int]) -> list[Turn]:
        """The retrieved turns of greatest total value within ``room``, most valuable first."""
        best: dict[int, tuple[float, Turn]] = {}
        for value, turn in self.retrieve(view):
            if turn.number not in taken and value > best.get(turn.number, (0.0, turn))[0]:
                best[turn.number] = (value, turn)
        items = sorted(best.values(), key=lambda item: (-item[0], item[1].number))
        costs = [view.tokens(turn) for _, turn in items]
        chosen = knapsack([value for value, _ in items], costs, room)
        left = room - sum(costs[i] for i in chosen)
        picked = set(chosen)
        for i, cost in enumerate(costs):  # room the knapsack's rounding left: the next best candidates that fit
            if i not in picked and cost <= left:
                picked.add(i)
                left -= cost
        return [items[i][1] for i in sorted(picked)]

    def retrieve(self, view: PolicyInput) -> Iterator[tuple[float, Turn]]:
        """Retrieved turns of ``view.turns`` with a value in (0, 1], lazily, most wanted first.

        Hits come in MMR order, each valued by its fused relevance relative to the best
        hit times ``1 / (1 + its place in that order)``, a prior that the first hits
        matter most. Each hit is followed by its neighbours: first on the side of the
        line that matches the query best (the turn after a hit whose last line matches,
        the turn before one whose first line does), valued at half the hit's value per
        step, then on the other side at a quarter per step. A turn may come more than
        once (a neighbour of two hits).
        """
        turns = view.turns
        if not turns or not view.query or not view.query.strip():
            return
        lo, hi = turns[0].number, turns[-1].number
        ranked = self._index.rank(view.query, lo, hi, self.candidates, self._dense_weight)
        if not ranked:
            return
        top = ranked[0][0] or 1.0
        relevance = {n: score / top for score, n in ranked}
        index = self._index.turns
        for position, number in enumerate(self._index.mmr(ranked, self.mmr_lambda)):
            view.check_deadline()
            value = relevance[number] / (1 + position)
            yield value, index[number]
            side = self._index.side(number, view.query) or 1
            for step in range(1, self.neighbours + 1):
                for near, weight in ((number + side * step, 0.5), (number - side * step, 0.25)):
                    if lo <= near <= hi and near in index:
                        yield value * weight**step, index[near]
