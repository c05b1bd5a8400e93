"""The ``extractive`` summarizer: the most salient sentences, within a token bound."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from ._salience import LABEL, features, sentences

#: Longest sentence kept, in words; longer ones are clipped with an ellipsis.
_MAX_WORDS = 40


class Extractive:
    """Fold evicted texts into a summary made of their most salient sentences.

    A sentence is worth keeping for the names, numbers and dates it holds and for its
    content words; small talk ("Haha, nice!") is worth nothing. The summary is a list
    of lines, one per source text, each with its speaker label ("Maya: ...") when the
    text had one. Every fold weighs the previous summary's sentences (their worth times
    ``recency``, so old lines give way to equally salient new ones) and the evicted ones
    together, and keeps the most salient (for their length) that fit in ``max_tokens``. The
    result depends only on the arguments, so a restored summary goes on exactly as the
    original would.
    """

    name = "extractive"

    def __init__(self, recency: float = 0.8) -> None:
        if not 0 < recency <= 1:
            raise ValueError(f"recency must be in (0, 1], got {recency!r}")
        self.recency = recency

    def summarize(self, previous: str, evicted: Sequence[str], max_tokens: int, count: Callable[[str], int]) -> str:
        """``previous`` with ``evicted`` folded in, at most ``max_tokens`` tokens by ``count``."""
        if not isinstance(previous, str):
            raise TypeError(f"previous must be a str, not {type(previous).__name__}")
        if isinstance(evicted, str) or not all(isinstance(t, str) for t in evicted):
            raise TypeError("evicted must be a sequence of str")
        if not isinstance(max_tokens, int) or max_tokens < 0:
            raise ValueError(f"max_tokens must be an int >= 0, got {max_tokens!r}")
        old = [line for line in previous.splitlines() if line.strip()]
        units = old + [t for t in evicted if t.strip()]
        labels = [match.group(1) if (match := LABEL.match(text)) else "" for text in units]
        speakers = frozenset(word.lower() for label in labels for word in label.split())
        candidates: list[tuple[float, int, int, str, int]] = []  # (-worth, unit, position, sentence, cost)
        seen: dict[str, int] = {}
        for index, text in enumerate(units):
            match = LABEL.match(text)
            weight = self.recency if index < len(old) else 1.0
            for position, sentence in enumerate(sentences(text[match.end() :] if match else text)):
                value = _salience(sentence, speakers) * weight
                if value <= 0:
                    continue
                sentence = _clip(sentence)
                seen[sentence.lower()] = len(candidates)  # a repeated sentence counts once, where it was last said
                cost = max(1, count(sentence))
                candidates.append((-value / math.sqrt(cost), index, position, sentence, cost))
        wanted = {i for i in seen.values()}
        ranked = sorted((c for i, c in enumerate(candidates) if i in wanted), key=lambda c: (c[0], -c[1], c[2]))
        room = max_tokens
        kept: list[tuple[float, int, int, str, int]] = []
        for candidate in ranked:
            cost = candidate[4] + 1  # a separator
            if cost <= room:
                kept.append(candidate)
                room -= cost
        text = _render(kept, labels)
        while kept and count(text) > max_tokens:  # labels and joins cost more than their parts: drop the weakest
            kept.remove(max(kept, key=lambda c: c[0]))
            text = _render(kept, labels)
        return text


def _salience(sentence: str, speakers: frozenset[str]) -> float:
    """What a sentence is worth: its specifics and content words, the speakers' own names left out."""
    found = features(sentence)
    names = [n for n in found.names if not _speaker(n, speakers)]
    content = min(sum(not _speaker(t, speakers) for t in found.terms), 12)
    specifics = len(names) + found.numbers + found.dates
    if content < 2 or (not specifics and (found.questions or content < 3)):
        return 0.0  # greetings, small talk and bare questions say nothing worth keeping
    return 1.5 * specifics + 0.5 * content


def _speaker(word: str, speakers: frozenset[str]) -> bool:
    """Whether ``word`` names a speaker or shortens one's name ("Mel" for "Melanie")."""
    return word in speakers or (len(word) >= 3 and any(s.startswith(word) for s in speakers))


def _clip(sentence: str) -> str:
    words = sentence.split()
    return sentence if len(words) <= _MAX_WORDS else " ".join(words[:_MAX_WORDS]) + " …"


def _render(kept: list[tuple[float, int, int, str, int]], labels: list[str]) -> str:
    lines: dict[int, list[tuple[int, str]]] = {}
    for _, unit, position, sentence, _ in kept:
        lines.setdefault(unit, []).append((position, sentence))
    out = []
    for unit in sorted(lines):
        body = " ".join(s for _, s in sorted(lines[unit]))
        out.append(f"{labels[unit]}: {body}" if labels[unit] else body)
    return "\n".join(out)
