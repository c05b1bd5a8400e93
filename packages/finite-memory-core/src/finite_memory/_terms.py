"""Text to index terms: lower-cased words, stop words dropped, a light suffix stemmer.

Shared by the BM25 index and the hashing embedder, so a query and the turns it looks
for are analysed the same way. The stemmer folds common English inflections
(``painted``/``painting``/``paints`` -> ``paint``) and a few noun-forming suffixes
(``recommendation`` -> ``recommend``); it never needs a dictionary.
"""

from __future__ import annotations

import re
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

#: Function words that carry no topic; a query made only of them matches nothing.
STOP_WORDS = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been before being below
    between both but by can can't could couldn't did didn't do does doesn't doing don't down during each few for
    from further had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him
    himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just let's me more most mustn't
    my myself no nor not of off on once only or other ought our ours ourselves out over own same shan't she she'd
    she'll she's should shouldn't so some such than that that's the their theirs them themselves then there there's
    these they they'd they'll they're they've this those through to too under until up very was wasn't we we'd we'll
    we're we've were weren't what what's when when's where where's which while who who's whom why why's will with
    won't would wouldn't you you'd you'll you're you've your yours yourself yourselves yeah yes oh ok okay hey hi
    really so too just thanks thank lol wow um uh
    """.split()  # noqa: SIM905
)

_SUFFIXES = ("ingly", "edly", "ings", "ing", "ied", "ies", "ed", "es", "ly", "s")
_DOUBLE = frozenset("bdfgmnprt")
#: Noun-forming suffixes folded into their verb (``rejection`` -> ``reject``, ``retirement``
#: -> ``retir``) when at least 5 letters are left, so short words (``nation``) keep theirs.
_DERIVED = ("ation", "ion", "ment")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A word folded to a stem shared by its inflections and derived nouns (``rejected``, ``rejection``)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith(("ss", "us", "is")):
                break
            word = word[: -len(suffix)] + ("y" if suffix in ("ied", "ies") else "")
            if word.endswith("i"):
                word = word[:-1] + "y"  # happily -> happy
            elif len(word) > 3 and word[-1] == word[-2] and word[-1] in _DOUBLE:
                word = word[:-1]  # running -> run
            break
    for suffix in _DERIVED:
        if word.endswith(suffix) and len(word) - len(suffix) >= 5:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]  # move / moved / moving -> mov
    return word


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (possessive ``'s`` removed), stop words kept."""
    out = []
    for match in _WORD.findall(text.lower()):
        if match.endswith("'s"):
            match = match[:-2]
        out.append(match)
    return out


def terms(text: str) -> list[str]:
    """The index terms of ``text``: stemmed words without stop words, in order."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS]
