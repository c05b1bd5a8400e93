"""Term extraction over Unicode: one word gives one term however it is typed, and unspaced scripts are searchable."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finite_memory import Memory
from finite_memory._terms import terms

NFD_ECOLE = unicodedata.normalize("NFD", "École")

FILLER = [
    "The weather was grey all day and I stayed in.",
    "I cooked pasta again, nothing special.",
    "Work was busy with meetings until six.",
    "Traffic on the bridge was terrible this morning.",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (NFD_ECOLE, ["ecol"]),  # combining acute accent: was ["e", "col"]
        ("École", ["ecol"]),
        ("ecole", ["ecol"]),
        ("İstanbul", ["istanbul"]),  # was ["stanbul"]: "İ".lower() is "i" + a combining dot
        ("ISTANBUL", ["istanbul"]),
        ("Ｔｏｋｙｏ", ["tokyo"]),  # full-width letters
        ("ﬁnal", ["final"]),  # a ligature
        ("Straße", ["strass"]),
        ("I’m at Maya’s", ["maya"]),  # typographic apostrophes as plain ones: "I'm" is a stop word
        ("東京", ["東京"]),
        ("私は東京に住んでいます", ["私は", "は東", "東京", "京に", "に住", "住ん", "んで", "でい", "いま", "ます"]),
        ("서울에서 살아요", ["서울", "울에", "에서", "살아", "아요"]),
        ("iPhoneを買った", ["iphon", "を買", "買っ", "った"]),
        ("नमस्ते दुनिया", ["नमस्ते", "दुनिया"]),  # vowel signs stay in their word
        ("мой йогурт", ["мой", "йогурт"]),  # Cyrillic letters keep their marks (й is not и)
        ("𠀋𠀌 and 朋", ["𠀋𠀌", "朋"]),  # astral Han; a lone character is its own term
    ],
)
def test_terms_of_unicode_text(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


def test_ascii_text_is_analysed_as_before() -> None:
    assert terms("What did Caroline's sister paint in 2023?") == ["carolin", "sister", "paint", "2023"]


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(codec="utf-8"), max_size=30))
def test_every_normal_form_of_a_text_has_the_same_terms(text: str) -> None:
    expected = terms(text)
    for form in ("NFC", "NFD", "NFKC", "NFKD"):
        assert terms(unicodedata.normalize(form, text)) == expected, form


def retrieved(memory: Memory, query: str, needle: str) -> bool:
    ctx = memory.context(query=query)
    return any(needle in m.content for m in ctx.messages if m.role != "system")


JAPANESE = ["私は大阪に住んでいます", "私は京都で働いています", "私は名古屋の料理が好きです", "東北に旅行しました"]
KOREAN = ["나는 부산에서 살아요", "나는 대구에서 일해요", "서점에 갔어요", "울산은 멀어요"]
FRENCH = ["Mon fils aime son collège.", "Elle a visité le lycée hier.", "Nous aimons l'université.", "Une église ?"]


@pytest.mark.parametrize("policy", ["semantic", "hybrid"])
@pytest.mark.parametrize(
    ("fact", "query", "others"),
    [
        (f"Ma fille aime beaucoup son {NFD_ECOLE} Jeannine.", "Quelle École ?", FRENCH),
        ("Ma fille aime beaucoup son École Jeannine.", f"Quelle {NFD_ECOLE} ?", FRENCH),
        ("私は東京に住んでいます", "東京", JAPANESE),
        ("We spent a week in İstanbul last spring.", "Istanbul?", FILLER),
        ("나는 서울에서 살아요", "서울", KOREAN),
    ],
)
def test_retrieval_finds_the_turn_however_the_word_is_written(
    policy: str, fact: str, query: str, others: list[str]
) -> None:
    memory = Memory(policy, max_tokens=120, reserve_output=0)
    for i in range(60):
        memory.add("user", fact if i == 5 else f"{others[i % len(others)]} ({i})")
        memory.add("assistant", f"OK ({i}).")
    assert retrieved(memory, query, fact)
