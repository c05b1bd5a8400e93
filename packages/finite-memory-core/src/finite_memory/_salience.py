"""What makes a piece of text worth keeping: names, numbers, dates, questions, content words.

Shared by the ``information`` scorer and the ``extractive`` summarizer, which both look
for the specifics a later question is likely to ask about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[.!?:;]")
_SENTENCE_END = frozenset(".!?:;")
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|$)")

_STOP = """
    a about above after again against all also am an and any are as at be because been before being below between
    both but by can could did do does doing down during each few for from further had has have having he her here
    hers herself him himself his how i if in into is it its itself just me more most my myself no nor not of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves yeah yes oh ok okay hey hi thanks thank lol
    wow um uh sure great good nice cool awesome glad happy really totally definitely know think mean like get got
    much lot lots things thing stuff something anything everything well right going gonna want let that's it's i'm
    i've i'll i'd you're you've don't can't didn't doesn't isn't wasn't won't what's there's let's he's she's
    they're we're
"""
_DATES = """
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    monday tuesday wednesday thursday friday saturday sunday yesterday today tomorrow tonight ago
"""

#: Function and filler words: they carry no topic of their own.
STOP_WORDS = frozenset(_STOP.split())
#: Month and weekday names and relative days.
DATE_WORDS = frozenset(_DATES.split())

#: A speaker label at the start of a text ("Maya: ...").
LABEL = re.compile(r"^([^\W\d_][\w .'’-]{0,39}):\s+")


@dataclass(frozen=True, slots=True)
class Features:
    """The salient parts of one text, counted once."""

    terms: tuple[str, ...]  # lower-cased content words, in order (stop words and numbers left out)
    names: tuple[str, ...]  # lower-cased capitalised words not at a sentence start
    numbers: int  # tokens with a digit
    dates: int  # month and weekday names, years, relative days
    questions: int  # sentences ending with "?"


def features(text: str) -> Features:
    """Scan ``text`` once for its content words and specifics."""
    terms: list[str] = []
    names: list[str] = []
    numbers = dates = 0
    start = True
    for token in _TOKEN.findall(text):
        if token in _SENTENCE_END:
            start = True
            continue
        lower = token.lower()
        if lower.endswith(("'s", "’s")):
            lower = lower[:-2]
        if not token.isalpha() and any(c.isdigit() for c in token):
            numbers += 1
            if len(token) == 4 and token.isdigit() and token[:2] in ("19", "20"):
                dates += 1
        elif lower in DATE_WORDS:
            dates += 1
            terms.append(lower)
        elif lower not in STOP_WORDS:
            terms.append(lower)
            if not start and token[0].isupper() and token != "I":
                names.append(lower)
        start = False
    return Features(tuple(terms), tuple(names), numbers, dates, text.count("?"))


def sentences(text: str) -> list[str]:
    """``text`` split into stripped sentences (lines and end punctuation split them)."""
    return [s for s in (m.group().strip() for m in _SENTENCE.finditer(text)) if s]
