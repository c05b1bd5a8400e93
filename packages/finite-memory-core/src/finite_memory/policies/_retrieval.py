"""The index behind the retrieval policies: BM25 postings, cached embeddings, session dates.

Every message is analysed once, when it is archived (``on_add``): its terms go into
the BM25 postings of its turn, into a second index under the turns beside it (document
expansion: a reply is found through the question it answers, and a question through
its reply), its session date's words into a third (the context shows a turn with its
date, so "what did she do on 3 June?" finds that session), and its text into a queue
that is embedded a batch at a time. A query then costs its own embedding, three bounded
walks over the postings and a bounded number of dot products, whatever the length of
the archive.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections.abc import Iterable, Iterator, Sequence
from operator import itemgetter, mul

from .._message import Message
from .._terms import terms
from .._turns import Turn
from ..embedders import Embedder
from ._bm25 import BM25Index

#: Messages queued before they are embedded in one batch (a query flushes the queue).
EMBED_BATCH = 64

#: The constant of reciprocal rank fusion, as in Cormack et al. (2009).
RRF_K = 60

#: The weight of a turn's neighbours' words in its BM25 score (its own words weigh 1):
#: enough to reach a turn that shares no word with the query but answers (or asks) one
#: that does, small enough that a turn matching the query itself still ranks first.
NEAR_WEIGHT = 0.15

#: The postings one query may walk in the neighbours' index and in the dates' index (the
#: turns' own index walks 2,000): the secondary evidence gets the smaller share of a
#: query's bounded cost.
NEAR_POSTINGS = 1000

#: The weight of a turn's session-date words in its BM25 score: the context shows a turn
#: with its date (``[date] `` in front of it), so the date's words count as its own.
DATE_WEIGHT = 1.0


class TurnIndex:
    """BM25 postings and embeddings of archived turns, kept in step with the archive.

    Args:
        embedder: computes the vectors (once per message; a turn's vector is the sum of
            its messages' vectors).
        dense_pool: at most this many turns are scored by embedding per query: every
            turn while the archive is that small, else the best lexical candidates.
        date_key: the ``meta`` key holding a message's session date and time.
    """

    def __init__(self, embedder: Embedder, *, dense_pool: int, date_key: str) -> None:
        self.embedder = embedder
        self.dense_pool = dense_pool
        self.date_key = date_key
        self.bm25 = BM25Index()
        self.near = BM25Index(max_postings=NEAR_POSTINGS)  # turn n -> the words of turns n - 1 and n + 1
        self.dated = BM25Index(max_postings=NEAR_POSTINGS)  # turn n -> the words of its session date
        self.turns: dict[int, Turn] = {}
        self.dates: dict[int, str] = {}
        self._vectors: dict[int, array[float]] = {}  # unit length: the direction of the turn's sum
        self._norms: dict[int, float] = {}  # the length of that sum
        self._pending: list[tuple[int, str]] = []
        self._revision = 0  # counts changes, so a query's lexical scores are reused only while current
        self._scored: tuple[tuple[object, ...], list[tuple[float, int]]] | None = None

    # -- keeping in step with the archive ----------------------------------------------

    def add(self, turn: Turn, message: Message) -> None:
        number = turn.number
        self.turns[number] = turn
        self._revision += 1
        text = message.content
        date = message.meta.get(self.date_key) if message.meta else None
        if isinstance(date, str) and date and number not in self.dates:
            self.dates[number] = date
            self.dated.add(number, terms(date))
        found = terms(text)
        self.bm25.add(number, found)
        if found:
            self.near.add(number + 1, found)
            if number - 1 in self.turns:
                self.near.add(number - 1, found)
        if text.strip():
            self._pending.append((number, text))
            if len(self._pending) >= EMBED_BATCH:
                self.flush()

    def remove(self, turns: Iterable[Turn]) -> None:
        self._revision += 1
        gone = set()
        for turn in turns:
            number = turn.number
            gone.add(number)
            self.turns.pop(number, None)
            self.dates.pop(number, None)
            own = self.bm25.counts(number)
            self.near.subtract(number - 1, own)
            self.near.subtract(number + 1, own)
            self.near.remove(number)
            self.dated.remove(number)
            self.bm25.remove(number)
            self._vectors.pop(number, None)
            self._norms.pop(number, None)
        if self._pending:
            self._pending = [item for item in self._pending if item[0] not in gone]

    def flush(self) -> None:
        """Embed the queued messages in one batch and fold them into their turns' vectors."""
        if not self._pending:
            return
        pending = self._pending
        vectors = self.embedder.embed([text for _, text in pending])
        if len(vectors) != len(pending):
            raise ValueError(f"embedder returned {len(vectors)} vectors for {len(pending)} texts")
        self._pending = []  # only now: a failed batch stays queued and is tried again
        for (number, _), vector in zip(pending, vectors, strict=True):
            unit = self._vectors.get(number)
            if unit is None:
                total = list(vector)
            else:  # the turn's sum so far is its unit vector times its norm
                norm = self._norms[number]
                total = [u * norm + x for u, x in zip(unit, vector, strict=True)]
            norm = sum(x * x for x in total) ** 0.5
            self._norms[number] = norm
            self._vectors[number] = array("f", [x / norm for x in total] if norm else total)

    # -- querying ----------------------------------------------------------------------

    def rank(self, query: str, lo: int, hi: int, limit: int, dense_weight: float) -> list[tuple[float, int]]:
        """Turns in ``[lo, hi]`` for ``query``, best first: BM25 and embedding ranks fused by RRF.

        ``dense_weight`` scales the embedding ranking's share of the fusion (0 leaves it out).
        """
        self.flush()
        lexical = self._lexical(terms(query), lo, hi)
        if lexical and not dense_weight:
            return lexical[:limit]
        span = hi - lo + 1
        if span <= self.dense_pool:
            pool: Iterable[int] = (n for n in range(lo, hi + 1) if n in self._vectors)
        else:
            pool = (n for _, n in lexical if n in self._vectors)
        dense = self._dense(query, pool)
        fused: dict[int, float] = {}
        for weight, ranking in ((1.0, lexical), (dense_weight if lexical else 1.0, dense)):
            for rank, (_, number) in enumerate(ranking):
                fused[number] = fused.get(number, 0.0) + weight / (RRF_K + rank + 1)
        return heapq.nlargest(limit, ((s, n) for n, s in fused.items()), key=lambda pair: (pair[0], -pair[1]))

    def _lexical(self, query: list[str], lo: int, hi: int) -> list[tuple[float, int]]:
        """BM25 hits of turns in ``[lo, hi]``, best first: own and date words, ``NEAR_WEIGHT`` times the neighbours'.

        (A neighbours' or date document in ``[lo, hi]`` is always a turn's: one is made
        only for a turn, and goes with it.) The last query's hits are kept while the
        index is unchanged, so :meth:`match` after :meth:`rank` costs no second walk.
        """
        key = (tuple(query), lo, hi, self._revision)
        if self._scored is not None and self._scored[0] == key:
            return self._scored[1]
        scores = self.near.scores(query, lo, hi, NEAR_WEIGHT, self.bm25.scores(query, lo, hi))
        self.dated.scores(query, lo, hi, DATE_WEIGHT, scores)
        best = heapq.nlargest(self.dense_pool, scores.items(), key=itemgetter(1))
        found = [(score, number) for number, score in best]
        self._scored = (key, found)
        return found

    def match(self, query: str, lo: int, hi: int) -> float:
        """How well the best turn in ``[lo, hi]`` matches ``query``: its BM25 score over the query's IDF mass.

        The mass is the sum of the inverse document frequencies of the query's words, a
        word the archive has never seen weighing as the rarest; a turn holding every
        word of the query once, at the average length, scores about 1. Chit-chat built
        of common words, or a query about things the archive never mentioned, scores low.
        """
        wanted = terms(query)
        if not wanted:
            return 0.0
        n = len(self.bm25)
        unseen = math.log(1 + (n + 0.5) / 0.5)
        mass = sum(self.bm25.idf(t, n) or unseen for t in set(wanted))
        hits = self._lexical(wanted, lo, hi)
        return hits[0][0] / mass if hits and mass > 0 else 0.0

    def best_line(self, number: int, query: str) -> int | None:
        """The index of the message of turn ``number`` that shares the most IDF weight with ``query``.

        ``None`` when no message shares a word with it (the turn was found through its
        neighbours' words, its date or its embedding).
        """
        wanted = set(terms(query))
        n = max(1, len(self.bm25))
        best, where = 0.0, None
        for i, message in enumerate(self.turns[number].messages):
            if message.content:
                score = sum(self.bm25.idf(t, n) for t in wanted.intersection(terms(message.content)))
                if score > best:
                    best, where = score, i
        return where

    def _dense(self, query: str, pool: Iterable[int]) -> list[tuple[float, int]]:
        (q,) = self.embedder.embed([query])
        if not any(q):
            return []
        vectors, norms = self._vectors, self._norms
        scored = []
        for number in pool:
            if norms[number]:
                score = sum(map(mul, q, vectors[number]))
                if score > 0:
                    scored.append((score, number))
        scored.sort(key=lambda pair: (-pair[0], pair[1]))
        return scored

    def mmr(self, ranked: Sequence[tuple[float, int]], lam: float) -> Iterator[int]:
        """Turn numbers of ``ranked`` in maximal-marginal-relevance order, lazily.

        Each step takes the turn with the best ``lam * relevance - (1 - lam) * similarity
        to the turns already taken``, relevance being the fused score scaled to [0, 1].
        Penalties only grow, so a turn's stale score is an upper bound: it is brought up
        to date only when it reaches the top of the heap (lazy greedy), which spares most
        of the similarity computations.
        """
        if not ranked:
            return
        top = ranked[0][0] or 1.0
        relevance = {n: s / top for s, n in ranked}
        units = {n: self._vectors[n] for n in relevance if lam < 1 and self._norms.get(n)}
        closest = dict.fromkeys(relevance, 0.0)
        heap = [(-lam * relevance[n], n, 0) for n in relevance]
        heapq.heapify(heap)
        taken: list[array[float]] = []
        while heap:
            _, n, seen = heapq.heappop(heap)
            mine = units.get(n)
            if mine is not None and seen < len(taken):
                for other in taken[seen:]:
                    sim = sum(map(mul, mine, other))
                    if sim > closest[n]:
                        closest[n] = sim
                heapq.heappush(heap, (-(lam * relevance[n] - (1 - lam) * closest[n]), n, len(taken)))
                continue
            yield n
            if mine is not None:
                taken.append(mine)
