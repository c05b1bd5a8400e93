"""The ``information`` scorer: how much a text says that the conversation has not said before."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ._salience import features

#: What each specific adds to a text's score, next to the rarity of its words.
NAME_WEIGHT = 1.0
NUMBER_WEIGHT = 1.0
DATE_WEIGHT = 1.0
QUESTION_WEIGHT = 1.0


class Information:
    """Scores texts by information content, dependency-free.

    A text's score is the rarity of its content words plus a bonus for each name
    (a capitalised word not at a sentence start, weighed by its rarity too, so the
    name of the person spoken to is no news), number, date and question it holds.
    A word's rarity is ``log(N / df) / log(N)`` over the ``N`` texts scored so far, 1
    for a word never seen before and near 0 for one in every text; document
    frequencies are updated as each text is scored and never recomputed, so a text
    is scored by how new its words were when it was said. Scores therefore depend on
    the order texts arrive in: one scorer serves one conversation.
    """

    name = "information"

    def __init__(self) -> None:
        self._df: dict[str, int] = {}
        self._texts = 0

    @property
    def texts(self) -> int:
        """How many texts this scorer has seen."""
        return self._texts

    def document_frequency(self, word: str) -> int:
        """In how many of the texts seen so far ``word`` (lower-cased) appeared."""
        return self._df.get(word.lower(), 0)

    def score(self, texts: Sequence[str]) -> list[float]:
        """One score per text, each text counted into the frequencies in turn."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("score() takes a sequence of str")
        scores = []
        df = self._df
        for text in texts:
            found = features(text)
            self._texts += 1
            total = self._texts + 1
            norm = math.log(total)
            rare: dict[str, float] = {}
            for word in set(found.terms):
                seen = df.get(word, 0) + 1
                df[word] = seen
                rare[word] = math.log(total / seen) / norm
            scores.append(
                sum(rare.values())
                + NAME_WEIGHT * sum(rare.get(name, 1.0) for name in found.names)
                + NUMBER_WEIGHT * found.numbers
                + DATE_WEIGHT * found.dates
                + QUESTION_WEIGHT * found.questions
            )
        return scores
