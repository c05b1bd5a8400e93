"""The store contract as executable checks: how a store plug-in proves itself.

Each check takes ``open_store(**options)``, a function that returns a store on one
namespace that is empty when the check starts (a fresh file, schema, key prefix);
calling it again returns another store object on the same data, as another process
would open it. ``options`` is empty or ``max_messages=N``. A check raises
``AssertionError`` saying what broke. With pytest::

    import pytest
    from finite_memory.stores.contract import CHECKS

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_store_contract(check, tmp_path):
        opened = []
        def open_store(**options):
            opened.append(RedisStore(f"redis://127.0.0.1:6379/0?prefix={tmp_path.name}", **options))
            return opened[-1]
        try:
            check(open_store)
        finally:
            for store in opened:
                store.close()

The checks use the store directly (appends, conflicts, state, retention, forget,
delete) and through :class:`~finite_memory.Memory` (reopening, two writers, 8 threads
on one memory, erasure seen by another writer, a deleted session not recreated).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from typing import Any

from .._errors import StoreError
from .._memory import Memory
from .._message import Message
from ._base import Store, StoreConflict

OpenStore = Callable[..., Store]

_CALL: dict[str, Any] = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'},
}


def every_kind() -> list[Message]:
    """Messages with every field and awkward text: tool calls, meta, names, NUL, non-BMP, 100 KB."""
    return [
        Message("system", "Be brief."),
        Message("user", "I moved to Lisbon in May.", meta={"date_time": "1 May 2023", "n": [1, 2.5, None, True]}),
        Message("assistant", "", tool_calls=(_CALL,)),
        Message("tool", "18 C, sunny", tool_call_id="call_1", meta={"source": "api"}),
        Message("assistant", "Noted ✓ 東京 😀 'quotes' \"double\" \\ back", name="helper"),
        Message("user", "a NUL \x00 inside", name="n\x00ame", meta={"nul": "x\x00y"}),
        Message("assistant", "long " * 20_000),
        Message("user", ""),
    ]


def stamped(messages: list[Message], first_id: int = 0, first_turn: int = 0) -> list[Message]:
    """``messages`` with consecutive ids and the memory's turn numbering (a user message starts a turn)."""
    turn = first_turn - 1
    out = []
    for i, message in enumerate(messages):
        if message.role == "user":
            turn += 1
        out.append(Message.from_dict({**message.to_dict(), "id": first_id + i, "turn": max(turn, first_turn)}))
    return out


def _expect(condition: object, problem: str) -> None:
    if not condition:
        raise AssertionError(problem)


def _raises(kind: type[BaseException], work: Callable[[], object], problem: str) -> BaseException:
    try:
        work()
    except kind as exc:
        return exc
    raise AssertionError(f"{problem}: no {kind.__name__} raised")


# -- the store itself ------------------------------------------------------------------------


def check_append_and_read_back(open_store: OpenStore) -> None:
    """Every kind of message comes back equal, in id order, from this store and a reopened one."""
    store = open_store()
    rows = stamped(every_kind())
    _expect(store.next_id("s") is None and store.messages("s") == [], "a new namespace must be empty")
    store.append("s", rows[:3])
    store.append("s", rows[3:])
    _expect(store.messages("s") == rows, "messages() must return what was appended, in id order")
    _expect(store.messages("s", after=4) == rows[5:], "messages(after=4) must return ids > 4 only")
    _expect(store.next_id("s") == len(rows), f"next_id must be {len(rows)}, got {store.next_id('s')}")
    _expect(store.count("s") == len(rows) and store.count("nobody") == 0, "count() is the number of messages")
    store.append("s", [])  # an empty append writes nothing
    other = open_store()
    _expect(other.messages("s") == rows, "another store object on the same data must read the same messages")
    _expect(other.sessions() == ["s"], f"sessions() must list ['s'], got {other.sessions()}")


def check_conflicting_append_writes_nothing(open_store: OpenStore) -> None:
    """An append that does not start at the next id raises StoreConflict (with ``expected``) and writes nothing."""
    store = open_store()
    rows = stamped([Message("user", f"m{i}") for i in range(4)], first_id=7)
    store.append("s", rows[:2])  # a new session may start at any id: a checkpoint keeps its ids
    _expect(store.next_id("s") == 9, "a session started at id 7 with 2 messages has next id 9")
    for wrong in (rows[3:], rows[:1]):
        try:
            store.append("s", wrong, state="x")
        except StoreConflict as exc:
            _expect(exc.expected in (9, None), f"StoreConflict.expected must be the next id (9), got {exc.expected}")
        else:
            raise AssertionError("appending at a wrong id must raise StoreConflict")
    _expect(store.messages("s") == rows[:2] and store.read_state("s") is None, "a conflicting append wrote something")
    store.append("s", rows[2:])
    _expect(store.messages("s") == rows, "the append at the right id must go through")


def check_state_goes_with_appends(open_store: OpenStore) -> None:
    """``state`` is kept with the session; an append without it keeps the last one."""
    store = open_store()
    rows = stamped([Message("user", f"m{i}") for i in range(3)])
    store.append("s", rows[:1], state='{"a":1}')
    store.append("s", rows[1:2])
    _expect(store.read_state("s") == '{"a":1}', "an append without state must keep the last state")
    store.append("s", rows[2:], state='{"a":2}')
    _expect(open_store().read_state("s") == '{"a":2}', "the newest state must be read back")
    _expect(store.read_state("nobody") is None, "a missing session has no state")


def check_deleted_session_is_not_recreated(open_store: OpenStore) -> None:
    """``create=False`` on a missing session raises StoreError (not StoreConflict) and writes nothing."""
    store = open_store()
    rows = stamped([Message("user", "a"), Message("assistant", "b"), Message("user", "c")])
    store.append("s", rows[:2])
    open_store().delete("s")
    _expect(store.next_id("s") is None and store.sessions() == [], "delete() must remove the session")
    exc = _raises(StoreError, lambda: store.append("s", rows[2:], create=False), "create=False on a deleted session")
    _expect(not isinstance(exc, StoreConflict), "a missing session is not a conflict: the memory must not catch up")
    _expect(store.messages("s") == [] and store.sessions() == [], "create=False must not recreate the session")
    store.delete("s")  # deleting what is not there is no error
    store.append("s", rows[2:])  # create=True (the default) starts it anew
    _expect(store.messages("s") == rows[2:], "an append with create=True starts a new session")


def check_forget_erases_and_moves_the_next_id(open_store: OpenStore) -> None:
    """``forget`` deletes by id, replaces the state and moves the next id on by one, in one go."""
    store = open_store()
    rows = stamped([Message("user", f"secret {i}") for i in range(6)])
    store.append("s", rows, state='{"summary":"secret 1"}')
    store.append("t", stamped([Message("user", "other session")]))
    next_id = store.forget("s", [1, 3, 3, 99], state='{"summary":""}')
    _expect(next_id == 7 and store.next_id("s") == 7, f"forget must return and store next id 7, got {next_id}")
    kept = [rows[0], rows[2], rows[4], rows[5]]
    _expect(open_store().messages("s") == kept, "forget must delete exactly the given ids")
    _expect(store.read_state("s") == '{"summary":""}', "forget must replace the state")
    _expect(store.count("t") == 1, "forget must not touch other sessions")
    _raises(StoreConflict, lambda: store.append("s", stamped([Message("user", "late")], first_id=6)), "an old next id")
    store.append("s", stamped([Message("user", "after")], first_id=7))
    _raises(StoreError, lambda: store.forget("nobody", [0], state="{}"), "forget on a missing session")


def check_retention_drops_whole_oldest_turns(open_store: OpenStore) -> None:
    """With ``max_messages``, whole oldest turns go in the append; system messages and the newest turn stay."""
    store = open_store(max_messages=4)
    _expect(store.max_messages == 4, "max_messages must be the cap given")
    rows = stamped(
        [Message("system", "pinned")]
        + [Message(role, f"{role} {i}") for i in range(4) for role in ("user", "assistant")]
        + [Message("assistant", f"long {i}") for i in range(5)]
    )
    for row in rows[:9]:
        store.append("s", [row])
    kept = [m.content for m in store.messages("s")]
    _expect(kept == ["pinned", "user 2", "assistant 2", "user 3", "assistant 3"], f"after 4 turns kept {kept}")
    store.append("s", rows[9:])  # the newest turn grows past the cap: it stays whole
    kept = [m.content for m in open_store(max_messages=4).messages("s")]
    _expect(kept == ["pinned", "user 3", "assistant 3"] + [f"long {i}" for i in range(5)], f"kept {kept}")


# -- through Memory ----------------------------------------------------------------------------


def check_memory_reopens_the_same_archive(open_store: OpenStore) -> None:
    """A memory reopened on another store object restores messages, turns and the same contexts."""
    mem = Memory("hybrid", max_tokens=600, store=open_store(), session="u")
    mem.extend(every_kind())
    for i in range(12):
        mem.add("user", f"question {i} about the trip to Porto")
        mem.add("assistant", f"answer {i}")
    mem.add("user", "one more")  # the policy's state goes with this add
    again = Memory("hybrid", max_tokens=600, store=open_store(), session="u")
    _expect(again.messages == mem.messages, "the reopened archive differs")
    _expect([(t.number, t.ids) for t in again.turns] == [(t.number, t.ids) for t in mem.turns], "turns differ")
    for query in ("Where do I live?", "Porto", None):
        _expect(again.context(query).messages == mem.context(query).messages, f"context({query!r}) differs")


def check_two_writers_on_one_session(open_store: OpenStore) -> None:
    """Two memories on one session interleave: each catches up on a conflict; nothing lost or duplicated."""
    a = Memory(store=open_store(), session="shared")
    b = Memory(store=open_store(), session="shared")
    a.add("user", "from a 1")
    b.add("user", "from b 1")
    a.add("user", "from a 2")
    rows = open_store().messages("shared")
    _expect([(m.id, m.content) for m in rows] == [(0, "from a 1"), (1, "from b 1"), (2, "from a 2")], f"got {rows}")
    _expect(a.messages == rows, "the writer that caught up must hold the store's messages")
    b.refresh()
    _expect(b.messages == rows, "refresh() must read what the other writer appended")


def check_threads_share_one_memory(open_store: OpenStore, threads: int = 8, adds: int = 500) -> None:
    """``threads`` x ``adds`` on one memory, with contexts and saves between: an archive equal to a rebuilt one."""
    mem = Memory("hybrid", max_tokens=500, store=open_store(), session="busy")
    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory() as folder:

        def work(n: int) -> None:
            try:
                for i in range(adds):
                    mem.add("user" if i % 2 == 0 else "assistant", f"thread {n} line {i} word{n}x{i % 7}")
                    if i % 100 == 50:
                        mem.context(query=f"word{n}x3")
                        mem.save(os.path.join(folder, f"t{n}.json"))
            except BaseException as exc:  # reported below
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        _expect(not errors, f"adds failed: {errors[:3]!r}")
        saved = Memory.load(os.path.join(folder, "t0.json"))
    total = threads * adds
    _expect([m.id for m in mem.messages] == list(range(total)), "ids must be 0..n-1, each once")
    texts = sorted(m.content for m in mem.messages)
    wanted = sorted(f"thread {n} line {i} word{n}x{i % 7}" for n in range(threads) for i in range(adds))
    _expect(texts == wanted, "every add must be archived exactly once")
    _expect(open_store().messages("busy") == mem.messages, "the store must hold the memory's archive")
    _expect(saved.messages == mem.messages[: len(saved)], "a checkpoint saved mid-run must be a prefix")
    rebuilt = Memory("hybrid", max_tokens=500, store=open_store(), session="busy")
    _expect([(t.number, t.ids) for t in rebuilt.turns] == [(t.number, t.ids) for t in mem.turns], "turns differ")
    for query in ("word3x4", "thread 7 line 499", None):
        _expect(rebuilt.context(query).messages == mem.context(query).messages, f"context({query!r}) differs")


def check_forget_reaches_every_copy(open_store: OpenStore) -> None:
    """``Memory.forget`` erases from the store, the memory, another writer's view and later contexts."""
    mem = Memory("hybrid", max_tokens=400, store=open_store(), session="u")
    other = Memory("hybrid", max_tokens=400, store=open_store(), session="u")
    for i in range(8):
        mem.add("user", f"turn {i} " + ("my card number is 4111-1111" if i == 2 else "about gardening"))
        mem.add("assistant", f"reply {i}")
    mem.add("user", "weather?")
    mem.add("assistant", "", tool_calls=(_CALL,))  # id 17
    mem.add("tool", "18 C", tool_call_id="call_1")  # id 18
    other.refresh()
    _expect("4111" in mem.messages[4].content, "message 4 holds the card number")
    erased = mem.forget([4], turns=[4])  # part of turn 2 (its reply stays), all of turn 4 (ids 8, 9)
    _expect(erased == [4, 8, 9], f"erased {erased}")
    erased = mem.forget([17])  # a call goes with its result
    _expect(erased == [17, 18], f"forgetting a tool call must erase its result too, erased {erased}")
    remaining = open_store().messages("u")
    _expect(remaining == mem.messages, "the store and the memory must agree after forget")
    _expect(all("4111" not in m.content for m in remaining), "the erased text is still stored")
    _expect("4111" not in (open_store().read_state("u") or ""), "the erased text is still in the stored state")
    other.refresh()
    _expect(other.messages == mem.messages, "another writer must drop erased messages at refresh()")
    for query in ("card number", None):
        _expect("4111" not in str(mem.context(query).messages), "a context still quotes erased text")
    late = Memory("hybrid", max_tokens=400, store=open_store(), session="u")
    added = late.add("user", "after the erasure")
    _expect(added.id == 21, f"ids must never be reused: 19 went to two forgets, then 21; got {added.id}")
    _raises(ValueError, lambda: mem.forget([10_000]), "forgetting an unknown id")


def check_deleted_session_stays_deleted(open_store: OpenStore) -> None:
    """A session deleted while a memory has it open is not silently recreated by that memory."""
    mem = Memory(store=open_store(), session="s")
    mem.add("user", "hello")
    open_store().delete("s")
    _raises(StoreError, lambda: mem.add("user", "still there?"), "adding to a deleted session")
    _raises(StoreError, mem.refresh, "refreshing a deleted session")
    _expect(open_store().sessions() == [], "the deleted session came back")
    fresh = Memory(store=open_store(), session="s")
    _expect(fresh.add("user", "anew").id == 0, "a new memory starts the session anew")


def check_memory_leaves_a_passed_store_open(open_store: OpenStore) -> None:
    """``Memory.close()`` closes a store it opened from a URL, never one passed in."""
    store = open_store()
    with Memory(store=store, session="s") as mem:
        mem.add("user", "hi")
    _expect(store.count("s") == 1, "the store passed in must stay usable after Memory.close()")


def check_memory_follows_retention(open_store: OpenStore) -> None:
    """With a capped store the memory drops the same whole turns; a writer left behind rebuilds its view."""
    a = Memory(store=open_store(max_messages=6), session="s")
    b = Memory(store=open_store(max_messages=6), session="s")
    a.add("user", "a0")
    for i in range(10):
        b.add("user", f"b{i}")
        b.add("assistant", f"ok {i}")
    a.add("user", "a1")
    stored = open_store(max_messages=6).messages("s")
    _expect(a.messages == stored and len(stored) <= 6, f"a holds {len(a.messages)}, the store {len(stored)}")
    _expect(stored[-1].content == "a1", "the newest add must be kept")


CHECKS: list[Callable[[OpenStore], Any]] = [
    check_append_and_read_back,
    check_conflicting_append_writes_nothing,
    check_state_goes_with_appends,
    check_deleted_session_is_not_recreated,
    check_forget_erases_and_moves_the_next_id,
    check_retention_drops_whole_oldest_turns,
    check_memory_reopens_the_same_archive,
    check_two_writers_on_one_session,
    check_threads_share_one_memory,
    check_forget_reaches_every_copy,
    check_deleted_session_stays_deleted,
    check_memory_leaves_a_passed_store_open,
    check_memory_follows_retention,
]
