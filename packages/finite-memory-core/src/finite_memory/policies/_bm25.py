"""An incremental BM25 index over turns: updated per message, never rebuilt.

Documents are keyed by turn number. Statistics are kept as integers (document
frequencies, lengths, their total), so the index built by replaying an archive is
identical to the one that grew message by message, removals included.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from itertools import islice
from operator import itemgetter


class BM25Index:
    """Postings ``term -> {turn: tf}`` with Okapi BM25 scoring.

    Args:
        k1, b: the usual BM25 saturation and length-normalisation constants.
        max_postings: how many postings one query may visit, which bounds the cost of a
            query whatever the size of the archive. Terms are visited rarest first, so
            the effort goes where the evidence is; a term with more postings than the
            budget left is walked newest first, so its most recent turns are scored
            and its oldest are not (the trade for a bounded query).
        max_df: a term found in more than this share of the turns scores nothing and
            is skipped (it tells no turn apart), unless the query has no other term.
    """

    __slots__ = ("_docs", "_lengths", "_postings", "_total", "b", "k1", "max_df", "max_postings")

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, max_postings: int = 2000, max_df: float = 0.3) -> None:
        self.k1 = k1
        self.b = b
        self.max_postings = max_postings
        self.max_df = max_df
        self._postings: dict[str, dict[int, int]] = {}
        self._docs: dict[int, dict[str, int]] = {}
        self._lengths: dict[int, int] = {}
        self._total = 0

    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc: int) -> bool:
        return doc in self._docs

    def add(self, doc: int, terms: Iterable[str]) -> None:
        """Add ``terms`` to document ``doc`` (created when new; a turn grows per message)."""
        counts = self._docs.setdefault(doc, {})
        postings = self._postings
        added = 0
        for term in terms:
            counts[term] = counts.get(term, 0) + 1
            entry = postings.get(term)
            if entry is None:
                postings[term] = {doc: 1}
            else:
                entry[doc] = entry.get(doc, 0) + 1
            added += 1
        self._lengths[doc] = self._lengths.get(doc, 0) + added
        self._total += added

    def counts(self, doc: int) -> Mapping[str, int]:
        """The term counts of document ``doc`` (empty when absent); a view, not a copy."""
        return self._docs.get(doc, {})

    def subtract(self, doc: int, counts: Mapping[str, int]) -> None:
        """Take ``counts`` out of document ``doc`` (as much as it holds); the emptied document is dropped."""
        own = self._docs.get(doc)
        if own is None:
            return
        for term, count in counts.items():
            held = own.get(term, 0)
            taken = min(held, count)
            if not taken:
                continue
            if held > taken:
                own[term] = self._postings[term][doc] = held - taken
            else:
                del own[term]
                entry = self._postings[term]
                del entry[doc]
                if not entry:
                    del self._postings[term]
            self._lengths[doc] -= taken
            self._total -= taken
        if not own:
            self.remove(doc)

    def remove(self, doc: int) -> None:
        """Forget document ``doc`` entirely (no-op when absent)."""
        counts = self._docs.pop(doc, None)
        if counts is None:
            return
        self._total -= self._lengths.pop(doc)
        for term in counts:
            entry = self._postings[term]
            del entry[doc]
            if not entry:
                del self._postings[term]

    def search(self, terms: Iterable[str], limit: int, lo: int, hi: int) -> list[tuple[float, int]]:
        """The best ``limit`` documents with ``lo <= doc <= hi``, as ``(score, doc)``, best first."""
        if limit <= 0:
            return []
        best = heapq.nlargest(limit, self.scores(terms, lo, hi).items(), key=itemgetter(1))  # ties: posting order
        return [(score, doc) for doc, score in best]

    def scores(
        self, terms: Iterable[str], lo: int, hi: int, weight: float = 1.0, into: dict[int, float] | None = None
    ) -> dict[int, float]:
        """BM25 scores times ``weight`` of the documents with ``lo <= doc <= hi`` that match ``terms``.

        They are added to ``into`` when given (several indexes can score into one
        dict), which is returned.
        """
        scores: dict[int, float] = {} if into is None else into
        n = len(self._docs)
        if not n:
            return scores
        wanted: dict[str, int] = {}
        for term in terms:
            wanted[term] = wanted.get(term, 0) + 1
        found = sorted((len(self._postings[t]), t) for t in wanted if t in self._postings)
        if not found:  # also when every document is empty (no average length to divide by)
            return scores
        avgdl = self._total / n
        k1, b = self.k1, self.b
        lengths = self._lengths
        budget = self.max_postings
        flat, slope = k1 * (1 - b), k1 * b / avgdl
        get = scores.get
        for i, (df, term) in enumerate(found):
            if budget <= 0 or (i and df > self.max_df * n):
                break  # common terms from here on: they cannot reorder the rare-term hits much
            factor = weight * math.log(1 + (n - df + 0.5) / (df + 0.5)) * wanted[term] * (k1 + 1)
            postings = self._postings[term].items()
            walk = postings if df <= budget else islice(reversed(postings), budget)  # newest first
            budget -= df
            for doc, tf in walk:
                if lo <= doc <= hi:
                    scores[doc] = get(doc, 0.0) + factor * tf / (tf + flat + slope * lengths[doc])
        return scores

    def idf(self, term: str, n: int) -> float:
        """The BM25 inverse document frequency of ``term`` among ``n`` documents."""
        df = len(self._postings.get(term, ()))
        return math.log(1 + (n - df + 0.5) / (df + 0.5)) if df else 0.0
