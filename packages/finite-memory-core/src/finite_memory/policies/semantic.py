"""Retrieval: the messages that answer the current query, found by BM25 and embeddings."""

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

#: A retrievable unit: (turn number, message index), or (turn number, None) for a whole turn.
Unit = tuple[int, int | None]


@dataclass
class Semantic(Layout):
    """Keep the messages most relevant to the query, the lines around them, and the latest turns.

    Turns are ranked by BM25 over an incremental inverted index (a turn's own words and
    its session date's, plus its neighbours' words at weight 0.15, so a reply is found
    through the question it answers) and by embedding similarity, the two rankings fused
    by reciprocal rank fusion, then reordered by maximal marginal relevance so
    near-duplicates do not crowd out other evidence. (The default ``hashing`` embedder
    declares a fusion weight of 0: fused, it lowered recall, so it serves MMR's
    similarity and the queries BM25 cannot match; a neural embedder fuses with its own
    weight.) Each hit is its best-matching message, and brings the ``2 * neighbours``
    messages after it and before it (an exchange spans lines and turns; the lines after
    a hit, where answers are, come first). What is packed are single messages, since
    one line is what a question needs and a whole turn costs twice that; a turn with
    tool calls stays whole, so a result never travels without its call. The units are
    packed by a 0/1 knapsack that maximises their total value within the room the
    newest ``recent_turns`` turns leave (a hit's value is its relevance times
    ``1 / (1 + its place in the MMR order)``, a message after it half that per step,
    one before it a quarter per step), so several short relevant lines can beat one
    long one; the layout engine places them, grouped by turn in conversation order,
    after the turns already in the context, and fills what is left with the newest
    turns when it rebuilds. Each run of kept turns from one session opens with that
    session's date, taken from the messages' ``meta``, as ``[date] `` in front of its
    first message: the context's copy is marked, the archive is not, and the marks are
    counted in the budget. With no query, this is a sliding window.

    Cost: a message is analysed and embedded once (embeddings in batches); a query
    costs its own embedding, a walk over at most 4,000 postings, at most ``dense_pool``
    dot products and an MMR over ``candidates`` hits, whatever the archive's length.

    Options:
        embedder: an embedder name registered in ``finite_memory.embedders``
            (``"hashing"``, or ``"minilm"`` with ``finite-memory-hf``), or an
            :class:`~finite_memory.embedders.Embedder` instance with a registered
            ``name`` (a checkpoint saves the name). Default ``"hashing"``.
        neighbours: turns on each side of a hit brought along when they fit, as the
            ``2 * neighbours`` messages after the hit's line and before it. Default 1.
        mmr_lambda: relevance against diversity, 0 to 1; 1 is pure relevance. Default 0.85.
        candidates: how many fused hits are considered for the context. Default 16.
        dense_pool: the most turns scored by embedding per query; beyond that size the
            embedder re-ranks the best lexical candidates only. Default 512.
        dense_weight: the embedding ranking's weight in the fusion (BM25's is 1);
            ``None`` takes the embedder's ``fusion_weight`` attribute, or 1 when it has
            none. Whatever the weight, the embedding ranking is used alone when no
            query word is in the index. Default ``None``.
        date_key: the ``meta`` key of a message's session date; ``None`` leaves dates
            out of the context and the index. Default ``"date_time"``.
        retrieval_tokens: the most tokens retrieval takes; ``None``: all the room the
            recent turns leave. Default ``None``.
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
        """The retrieved messages of greatest total value within ``room``, grouped by turn, most valuable first.

        A turn whose every message was chosen comes whole (the archive's own turn); one
        with some of its messages comes as a new :class:`Turn` of those, in their order.
        """
        best: dict[Unit, float] = {}
        for value, unit in self.retrieve(view):
            if unit[0] not in taken and value > best.get(unit, 0.0):
                best[unit] = value
        items = sorted(best.items(), key=lambda item: (-item[1], item[0]))
        index = self._index.turns
        costs = [_cost(index[number], line, view) for (number, line), _ in items]
        chosen = knapsack([value for _, value in items], costs, room)
        left = room - sum(costs[i] for i in chosen)
        picked = set(chosen)
        for i, cost in enumerate(costs):  # room the knapsack's rounding left: the next best candidates that fit
            if i not in picked and cost <= left:
                picked.add(i)
                left -= cost
        lines: dict[int, list[int | None]] = {}  # turn number -> chosen lines, in order of value
        for i in sorted(picked):
            (number, line), _ = items[i]
            lines.setdefault(number, []).append(line)
        return [_part(index[number], chosen_lines) for number, chosen_lines in lines.items()]

    def retrieve(self, view: PolicyInput) -> Iterator[tuple[float, Unit]]:
        """Retrieved messages of ``view.turns`` with a value in (0, 1], lazily, most wanted first.

        A unit is ``(turn number, message index)``, or ``(turn number, None)`` for a whole
        turn (one with tool calls). Hits come in MMR order, each valued by its fused
        relevance relative to the best hit times ``1 / (1 + its place in that order)``, a
        prior that the first hits matter most; a hit is its turn's message sharing the
        most weight with the query (the whole turn's messages when none shares a word:
        it was found through its neighbours, its date or its embedding). Each hit is
        followed by the ``2 * neighbours`` messages after it, valued at half the hit's
        value per step, then as many before it at a quarter per step. A unit may come
        more than once (a neighbour of two hits).
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
        steps = 2 * self.neighbours
        for position, number in enumerate(self._index.mmr(ranked, self.mmr_lambda)):
            view.check_deadline()
            value = relevance[number] / (1 + position)
            turn = index[number]
            whole = _whole(turn)
            line = None if whole else self._index.best_line(number, view.query)
            if line is not None:
                hits: list[Unit] = [(number, line)]
            else:  # a turn with tool calls, or one that no line of matches: all of it
                hits = [(number, None)] if whole else [(number, i) for i in range(len(turn.messages))]
            for hit in hits:
                yield value, hit
            for direction, weight in ((1, 0.5), (-1, 0.25)):
                unit, worth = hits[-1] if direction > 0 else hits[0], value
                for _ in range(steps):
                    found = _beside(index, unit, direction, lo, hi)
                    if found is None:
                        break
                    unit, worth = found, worth * weight
                    yield worth, unit


def _whole(turn: Turn) -> bool:
    """Whether ``turn`` goes whole or not at all: it holds tool calls (a result never travels without its call)."""
    return any(m.tool_calls or m.tool_call_id for m in turn.messages)


def _cost(turn: Turn, line: int | None, view: PolicyInput) -> int:
    return view.tokens(turn) if line is None else view.counter.message(turn.messages[line])


def _beside(index: Mapping[int, Turn], unit: Unit, direction: int, lo: int, hi: int) -> Unit | None:
    """The unit next to ``unit`` (``direction`` 1: after it, -1: before it), within turns ``[lo, hi]``."""
    number, line = unit
    turn = index[number]
    if line is not None and 0 <= line + direction < len(turn.messages):
        return number, line + direction
    number += direction
    while lo <= number <= hi and number in index:
        turn = index[number]
        if turn.messages:
            if _whole(turn):
                return number, None
            return number, 0 if direction > 0 else len(turn.messages) - 1
        number += direction
    return None


def _part(turn: Turn, lines: Sequence[int | None]) -> Turn:
    """``turn`` itself when ``lines`` covers it, else a turn of the chosen messages in their order."""
    if None in lines or len(set(lines)) == len(turn.messages):
        return turn
    return Turn(turn.number, [turn.messages[i] for i in sorted(i for i in lines if i is not None)])
