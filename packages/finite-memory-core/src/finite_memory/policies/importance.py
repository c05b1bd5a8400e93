"""Importance: the turns that say the most, ranked once by a scorer, plus the newest turns."""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._message import Message
from .._salience import features
from .._turns import Turn
from ..scorers import Scorer
from ._base import PolicyInput, Selection
from ._layout import Layout
from ._options import check_ints, check_number
from ._plugins import resolve, saved_name

#: Messages scored together in one ``Scorer.score`` call (a neural scorer batches them).
_BATCH = 16

#: Turns in a row that do not fit before the selection stops looking.
_MAX_MISSES = 64

#: The most turns a query re-ranks, whatever the budget.
_POOL_TURNS = 1024

#: Turns whose word sets are cached for query matching.
_WORDS_CACHE = 8192

#: Approximate characters per token, to rank turns by worth per token without a tokenizer.
_CHARS_PER_TOKEN = 4


@dataclass
class Importance(Layout):
    """Keep the turns that carry the most information per token, and the newest turns.

    Every message is scored once by a scorer (``information`` by default: rare words,
    names, numbers, dates, questions), in batches as messages are archived and at the
    latest when the next context is built; a turn's worth is the sum of its messages'
    scores. Turns are kept ranked by worth per token as they arrive,
    so building a context walks the ranking from the top, never the whole history.
    The layout engine places them after the turns already in the context (see
    :class:`~finite_memory.policies.Layout`).

    With a query, the ``query_pool`` budgets' worth of the most important turns are
    re-ranked by how many of the query's words they hold (rare words weigh more),
    blended with their importance by ``query_weight``.

    Options:
        scorer: a registered scorer name (``"information"``, the default, or
            ``"attention"`` with ``finite-memory-hf``) or an object with ``score(texts)``.
            An instance saves in a checkpoint by its registered ``name`` only.
        query_weight: how much the query counts against importance; 0 ignores it. Default 1.
        query_pool: how many budgets' worth of important turns the query re-ranks (at most
            1,024 turns). Default 8.
        recent_turns, low_water: as every policy.
    """

    name = "importance"
    scorer: str | Scorer = "information"
    query_weight: float = 1.0
    query_pool: float = 8.0
    retrieval_tokens: int | None = None
    _scorer: Scorer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.retrieval_tokens is not None:
            check_ints(self, ("retrieval_tokens",), 0)
        check_number(self, "query_weight", 0)
        check_number(self, "query_pool", 0)
        self._scorer = resolve("scorers", self.scorer, Scorer, "score(texts) -> list[float]")
        self._pending: list[tuple[int, str]] = []  # (turn number, text) waiting for the scorer
        self._worth: dict[int, list[float]] = {}  # turn number -> [sum of scores, characters]
        self._ranked: list[tuple[float, int]] = []  # (-worth per token, -turn number) of closed turns
        self._keys: dict[int, tuple[float, int]] = {}  # turn number -> its entry in _ranked
        self._open: set[int] = set()  # turns not ranked yet (the newest, still growing)
        self._newest = -1  # the number of the newest turn seen
        self._words: dict[int, frozenset[str]] = {}  # turn number -> content words, for query matching

    # -- incremental index ------------------------------------------------------------

    def on_add(self, turn: Turn, message: Message) -> None:
        self._pending.append((turn.number, message.content))
        worth = self._worth.get(turn.number)
        if worth is None:
            worth = self._worth[turn.number] = [0.0, 0.0]
            self._open.add(turn.number)
        worth[1] += len(message.content) + _CHARS_PER_TOKEN * 4  # a message's overhead, in characters
        if turn.number > self._newest:
            self._newest = turn.number
        if len(self._pending) >= _BATCH:
            self._flush()

    def on_remove(self, turns: Sequence[Turn]) -> None:
        super().on_remove(turns)
        self._flush()
        for turn in turns:
            self._worth.pop(turn.number, None)
            self._words.pop(turn.number, None)
            self._open.discard(turn.number)
            key = self._keys.pop(turn.number, None)
            if key is not None:
                index = bisect_left(self._ranked, key)
                if index < len(self._ranked) and self._ranked[index] == key:
                    del self._ranked[index]

    def _flush(self) -> None:
        """Score the pending messages in one call and rank the turns that are complete."""
        if self._pending:
            pending, self._pending = self._pending, []
            scores = self._scorer.score([text for _, text in pending])
            if len(scores) != len(pending):
                raise ValueError(f"the scorer returned {len(scores)} scores for {len(pending)} texts")
            for (number, _), score in zip(pending, scores, strict=True):
                value = float(score)
                if not math.isfinite(value):
                    raise ValueError(f"the scorer returned {score!r}; scores must be finite numbers")
                worth = self._worth.get(number)
                if worth is not None:
                    worth[0] += value
        for number in [n for n in self._open if n < self._newest]:
            self._open.discard(number)
            key = (self._key_of(number), -number)
            self._keys[number] = key
            insort(self._ranked, key)

    # -- selection ----------------------------------------------------------------------

    def query_room(self, view: PolicyInput) -> int:
        return view.budget if self.retrieval_tokens is None else self.retrieval_tokens

    def select(self, view: PolicyInput) -> Selection:
        self._flush()  # score what is pending even when there is nothing to choose from yet
        return super().select(view)

    def wanted(self, view: PolicyInput, room: int, taken: set[int]) -> list[Turn]:
        """The most important turns (the query's pool re-ranked first) that fit ``room``, best first."""
        self._flush()
        kept: dict[int, Turn] = {}
        misses = 0
        for turn in self._ranking(view):
            if room <= 0 or misses > _MAX_MISSES:
                break
            if turn.number in kept or turn.number in taken:
                continue
            cost = view.tokens(turn)
            if cost > room:
                misses += 1
                continue
            kept[turn.number] = turn
            room -= cost
            misses = 0
        return list(kept.values())

    def _ranking(self, view: PolicyInput) -> Iterator[Turn]:
        """The older turns, best first (lazily): by importance, the query's pool re-ranked first."""
        turns = view.turns
        first, size = (turns[0].number if turns else 0), len(turns)
        open_keys = sorted((self._key_of(n), -n) for n in self._open)

        def ranked() -> Iterator[tuple[float, Turn]]:
            for key, negative in heapq.merge(self._ranked, open_keys):
                index = -negative - first  # turn numbers are consecutive
                if 0 <= index < size:
                    turn = turns[index]
                    if turn.number == -negative:
                        yield -key, turn

        if not view.query or not self.query_weight:
            for _, turn in ranked():
                yield turn
            return
        pool_room = self.query_pool * view.budget
        pool: list[tuple[float, Turn]] = []
        for worth, turn in ranked():
            pool.append((worth, turn))
            pool_room -= view.tokens(turn)
            if pool_room <= 0 or len(pool) >= _POOL_TURNS:
                break
        yield from self._blend(view.query, pool)
        for _, turn in ranked():
            yield turn

    def _blend(self, query: str, pool: list[tuple[float, Turn]]) -> list[Turn]:
        """The pool's turns ordered by importance plus ``query_weight`` times their match with ``query``.

        A query word found in few of the pool's turns weighs more (an IDF over the pool);
        both parts are scaled to [0, 1] over the pool before they are blended.
        """
        words = set(features(query).terms)
        if not pool or not words:
            return [turn for _, turn in pool]
        if len(self._words) > _WORDS_CACHE:
            self._words.clear()
        holds: list[set[str]] = []
        for _, turn in pool:
            cached = self._words.get(turn.number)
            if cached is None:
                cached = self._words[turn.number] = frozenset(features(turn.text).terms)
            holds.append(words & cached)
        df: dict[str, int] = {}
        for held in holds:
            for word in held:
                df[word] = df.get(word, 0) + 1
        idf = {word: math.log(1 + len(pool) / count) for word, count in df.items()}
        match = [sum(idf[w] for w in held) for held in holds]
        top_match = max(match) or 1.0
        top_worth = max(worth for worth, _ in pool) or 1.0
        scored = [
            (worth / top_worth + self.query_weight * m / top_match, -index)
            for index, ((worth, _), m) in enumerate(zip(pool, match, strict=True))
        ]
        scored.sort(reverse=True)
        return [pool[-index][1] for _, index in scored]

    def _key_of(self, number: int) -> float:
        """Minus the turn's worth per (approximate) token: the ranking's sort key."""
        total, chars = self._worth[number]
        return -total / (chars / _CHARS_PER_TOKEN)

    # -- options and state --------------------------------------------------------------

    def options(self) -> dict[str, Any]:
        options = super().options()
        options["scorer"] = saved_name("scorers", self.scorer)
        return options
