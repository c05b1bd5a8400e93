"""Text to index terms: lower-cased words, stop words dropped, a light suffix stemmer.

Shared by the BM25 index and the hashing embedder, so a query and the turns it looks
for are analysed the same way. The stemmer folds common English inflections
(``painted``/``painting``/``paints`` -> ``paint``) and a few noun-forming suffixes
(``recommendation`` -> ``recommend``); it never needs a dictionary.

Text that is not ASCII is normalised first, so one word has one term however it was
typed or encoded: compatibility forms folded (NFKC: ``ﬁ`` -> ``fi``, full-width
``Ｔｏｋｙｏ`` -> ``tokyo``), accents on Latin and Greek letters dropped (an NFD
``École``, an NFC ``École`` and ``ecole`` meet; ``İstanbul`` -> ``istanbul``), case
folded (``Straße`` -> ``strasse``), typographic apostrophes made plain. Combining marks
stay inside their word (Devanagari, Hebrew, Arabic words are not split at their vowel
signs). Scripts written without spaces between words (Han, kana, Hangul, Thai, Lao,
Khmer, Myanmar) are indexed as overlapping character bigrams, so ``東京`` finds
``私は東京に住んでいます``.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?")

#: Scripts written without spaces between words: Myanmar, Hangul Jamo, Thai, Lao, Khmer, kana,
#: Han (with its iteration marks), Hangul syllables, CJK compatibility ideographs...
_UNSPACED_BASIC = (
    "\u1000-\u109f\u1100-\u11ff\u0e00-\u0eff\u1780-\u17ff\u3005\u3007\u3040-\u30ff\u3130-\u318f"
    "\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7ff\uf900-\ufaff"
)
#: ... and the supplementary Han planes.
_UNSPACED = _UNSPACED_BASIC + "\U00020000-\U0003134f"
#: Latin and Greek letters beyond ASCII (precomposed accented ones among them), and combining accents.
_LATIN_GREEK_BEYOND_ASCII = "\u00c0-\u024f\u0370-\u03ff\u1e00-\u1fff"
_COMBINING_ACCENTS = "\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f"
#: Accents on a Latin or Greek letter (after compatibility decomposition), dropped from terms.
_ACCENTS = re.compile(f"(?<=[A-Za-z{_LATIN_GREEK_BEYOND_ASCII}])[{_COMBINING_ACCENTS}]+")
#: Text that may hold such an accent: a precomposed letter beyond ASCII or a combining accent.
_MAY_HOLD_ACCENTS = re.compile(f"[{_LATIN_GREEK_BEYOND_ASCII}{_COMBINING_ACCENTS}]")
#: Typographic apostrophes (right single quote, modifier letter apostrophe) made plain (NFKC already
#: made the full-width one plain).
_APOSTROPHES = ("\u2019", "\u02bc")

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
    """The lower-cased words of ``text`` (possessive ``'s`` removed), stop words kept.

    A run of a script written without spaces gives its overlapping character bigrams
    (a single character gives itself).
    """
    if text.isascii():
        found = _WORD.findall(text.lower())
    else:
        simple, full, needs_full, unspaced = _unicode_words()
        text = fold(text)
        if needs_full.search(text):
            pattern = full
        elif unspaced.search(text):
            pattern = simple
        else:  # words of spaced scripts only (Latin, Greek, Cyrillic...): as for ASCII
            pattern = None
            found = _WORD.findall(text)
        if pattern is not None:
            found = []
            for word, run in pattern.findall(text):
                if word:
                    found.append(word)
                elif len(run) == 1:
                    found.append(run)
                else:
                    found.extend(run[i : i + 2] for i in range(len(run) - 1))
    out = []
    for match in found:
        if match.endswith("'s"):
            match = match[:-2]
        out.append(match)
    return out


def fold(text: str) -> str:
    """``text`` in one normal form for matching: compatibility forms, Latin and Greek accents and case folded."""
    if _MAY_HOLD_ACCENTS.search(text):
        text = unicodedata.normalize("NFC", _ACCENTS.sub("", unicodedata.normalize("NFKD", text)))
    elif not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    for apostrophe in _APOSTROPHES:
        if apostrophe in text:
            text = text.replace(apostrophe, "'")
    return text


def terms(text: str) -> list[str]:
    """The index terms of ``text``: stemmed words without stop words, in order."""
    return [stem(w) for w in words(text) if w not in STOP_WORDS]


@cache
def _unicode_words() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """Patterns for folded text: a word (group 1) or a run of unspaced script (group 2).

    The first is for text of the Basic Multilingual Plane without combining marks
    (most text); the second keeps a word's marks in it and knows the astral Han planes;
    the third finds text that needs the second, the fourth text with unspaced script.
    Built on first use (the mark table takes a scan of the Unicode database, some
    20 ms): ASCII text never needs them.
    """
    mark, basic_marks = _mark()

    def word_or_run(letter: str, unspaced: str) -> re.Pattern[str]:
        return re.compile(f"({letter}(?:'{letter})?)|([{unspaced}]+)")

    basic_letter = f"[^\\W_{_UNSPACED_BASIC}]"
    letter = f"[^\\W_{_UNSPACED}]"
    return (
        word_or_run(f"{basic_letter}+", _UNSPACED_BASIC),
        word_or_run(f"{letter}(?:{letter}|{mark})*", _UNSPACED),
        re.compile(f"[{basic_marks}\\U00010000-\\U0010ffff]"),
        re.compile(f"[{_UNSPACED_BASIC}]"),
    )


def _mark() -> tuple[str, str]:
    """A pattern for one combining mark (categories Mn, Mc, Me) this Python knows, and the
    class body of those in the Basic Multilingual Plane.

    The astral marks go in a second class behind a lookahead: ``re`` tests a class's
    astral ranges one by one, and most text has none.
    """
    ranges: list[list[int]] = []
    for code in (*range(0x300, 0x20000), *range(0xE0100, 0xE01F0)):
        if unicodedata.category(chr(code))[0] == "M":
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1][1] = code
            else:
                ranges.append([code, code])

    def body(part: list[list[int]]) -> str:
        return "".join(f"{chr(low)}-{chr(high)}" if high > low else chr(low) for low, high in part)

    basic = body([r for r in ranges if r[1] <= 0xFFFF])
    astral = body([r for r in ranges if r[0] > 0xFFFF])
    return f"(?:[{basic}]|(?=[\\U00010000-\\U0010ffff])[{astral}])", basic
