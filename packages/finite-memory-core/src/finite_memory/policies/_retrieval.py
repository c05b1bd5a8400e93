"""The index behind the retrieval policies: BM25 postings, cached embeddings, session dates.

Every message is analysed once, when it is archived (``on_add``): its terms go into
the BM25 postings of its turn, into a second index under the turns beside it (document
expansion: a reply is found through the question it answers, and a question through
its reply), and its text into a queue that is embedded a batch at a time. A query then
costs its own embedding, two bounded walks over the postings and a bounded number of
dot products, whatever the length of the archive.
"""

from __future__ import annotations

import heapq
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

#: The postings one query may walk in the neighbours' index (the turns' own index walks
#: 2,000): the secondary evidence gets the smaller share of a query's bounded cost.
NEAR_POSTINGS = 1000


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
        self.turns: dict[int, Turn] = {}
        self.dates: dict[int, str] = {}
        self._vectors: dict[int, array[float]] = {}  # unit length: the direction of the turn's sum
        self._norms: dict[int, float] = {}  # the length of that sum
        self._pending: list[tuple[int, str]] = []

    # -- keeping in step with the archive ----------------------------------------------

    def add(self, turn: Turn, message: Message) -> None:
        number = turn.number
        self.turns[number] = turn
        text = message.content
        date = message.meta.get(self.date_key) if message.meta else None
        if isinstance(date, str) and date and number not in self.dates:
            self.dates[number] = date
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
        """BM25 hits of turns in ``[lo, hi]``, best first: own words plus ``NEAR_WEIGHT`` times the neighbours'.

        (A neighbours' document in ``[lo, hi]`` is always a turn's: one is made only
        beside a turn, and goes with it.)
        """
        scores = self.near.scores(query, lo, hi, NEAR_WEIGHT, self.bm25.scores(query, lo, hi))
        best = heapq.nlargest(self.dense_pool, scores.items(), key=itemgetter(1))
        return [(score, number) for number, score in best]

    def side(self, number: int, query: str) -> int:
        """Where the line matching ``query`` best sits in turn ``number``: -1 first, 1 last, 0 neither.

        The turn beside that line (before a first line, after a last one) is the one
        most likely to continue the exchange.
        """
        messages = [m for m in self.turns[number].messages if m.content]
        if len(messages) < 2:
            return 0
        wanted = set(terms(query))
        n = max(1, len(self.bm25))
        best, where = -1.0, 0
        for i, message in enumerate(messages):
            score = sum(self.bm25.idf(t, n) for t in wanted.intersection(terms(message.content)))
            if score > best:
                best, where = score, i
        return -1 if where == 0 else 1 if where == len(messages) - 1 else 0

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
