from __future__ import annotations

import re

import pytest

from finite_memory import Memory
from finite_memory._counting import TokenCounter
from finite_memory._truncate import fit_messages, truncate_text
from finite_memory.stores import InMemoryStore, open_store


def test_turn_window_is_a_read_only_prefix_view() -> None:
    memory = Memory()
    for i in range(5):
        memory.add("user", f"q{i}")
        memory.add("assistant", f"a{i}")
    turns = memory.turns
    assert len(turns) == 5
    assert turns[-1].number == 4 and turns[0].number == 0
    assert [t.number for t in turns[1:3]] == [1, 2]
    assert [t.number for t in reversed(turns)] == [4, 3, 2, 1, 0]
    with pytest.raises(IndexError):
        turns[5]
    assert turns[2].text == "q2\na2"
    assert turns[2].ids == [4, 5]
    assert repr(turns[2]) == "Turn(number=2, messages=2)"


def test_a_memory_reopened_on_a_store_restores_its_archive() -> None:
    store = InMemoryStore()
    first = Memory(store=store, session="alice")
    first.add("user", "I moved to Lisbon in May.")
    first.add("assistant", "Nice.")
    Memory(store=store, session="bob").add("user", "hello")
    again = Memory("sliding", max_tokens=64, reserve_output=0, store=store, session="alice")
    assert [m.content for m in again.messages] == ["I moved to Lisbon in May.", "Nice."]
    assert again.add("user", "next").id == 2
    assert store.sessions() == ["alice", "bob"]
    store.delete("bob")
    assert store.sessions() == ["alice"]
    assert "sessions=1" in repr(store)
    assert open_store(store) is store
    assert isinstance(open_store("memory://"), InMemoryStore)


def test_truncation_helpers_respect_their_bounds() -> None:
    counter = TokenCounter(Memory().tokenizer)
    text = "alpha " * 400
    cut = truncate_text(text, 50, counter)
    assert counter.text(cut) <= 50 and "tokens cut by finite-memory" in cut
    assert truncate_text("short", 50, counter) == "short"
    assert truncate_text(text, 3, counter) == ""  # not even the marker fits
    memory = Memory()
    memory.add("user", "x " * 300)
    memory.add("assistant", "y " * 300)
    messages = memory.messages
    assert fit_messages(messages, 10_000, counter) is messages
    fitted = fit_messages(messages, 120, counter)
    assert fitted is not None and sum(counter.message(m) for m in fitted) <= 120
    assert fit_messages(messages, 5, counter) is None


def test_memory_url_options_are_kept() -> None:
    capped = open_store("memory://?max_messages=2")
    assert capped.max_messages == 2
    mem = Memory(store=capped, session="s")
    for i in range(3):
        mem.add("user", f"q{i}")
    assert [m.content for m in capped.messages("s")] == ["q1", "q2"] == [m.content for m in mem.messages]
    for bad in ("memory://x", "memory://?nope=1", "memory://?max_messages=0", "memory:"):
        with pytest.raises(ValueError):
            open_store(bad)


def test_a_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from finite_memory import BackendNotInstalled

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    monkeypatch.delitem(sys.modules, "finite_memory.stores.postgres", raising=False)
    with pytest.raises(BackendNotInstalled, match=r"pip install 'finite-memory-core\[postgres\]'"):
        open_store("postgresql://app@127.0.0.1:5432/chats")


def test_the_truncation_marker_reports_what_was_cut() -> None:
    counter = TokenCounter(Memory().tokenizer)
    text = "head " + "alpha beta gamma " * 300 + " tail"
    total = counter.text(text)
    cut = truncate_text(text, 60, counter)
    found = re.search(r"\[\.\.\. (\d+) tokens cut by finite-memory \.\.\.\]", cut)
    assert found is not None and cut.startswith("head") and cut.endswith("tail")
    head, _, tail = cut.partition(found.group(0))
    removed = text[len(head) - 1 : len(text) - (len(tail) - 1)]  # the marker's own spaces are not text
    assert int(found.group(1)) == counter.text(removed) < total
