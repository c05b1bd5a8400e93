"""Sessions held by one proxy process: their memories, and one turn at a time on each."""

from __future__ import annotations

import asyncio
import gc
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from finite_memory import Memory
from finite_memory.stores import InMemoryStore, Store

from ._errors import session_busy

#: An archive at least this long is frozen out of the garbage collector's way once loaded.
FREEZE_AT = 2_000


class _Entry:
    __slots__ = ("lock", "memory", "system", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.memory: Memory | None = None
        self.system: str | None = None  # the session's newest archived system prompt
        self.users = 0  # requests holding or waiting for this entry: it is not evicted meanwhile


class Session:
    """A session held for one turn: its memory, read up to date with the store."""

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    @property
    def memory(self) -> Memory:
        assert self._entry.memory is not None
        return self._entry.memory

    @property
    def system(self) -> str | None:
        """The session's current system prompt (its newest archived system message)."""
        return self._entry.system

    def archived(self, system: str | None) -> None:
        """Note a turn that archived ``system`` as the new system prompt."""
        if system is not None:
            self._entry.system = system


class Sessions:
    """The sessions this process holds, least recently used out first.

    Args:
        store: the store every session lives in (shared with other processes or not).
        limit: sessions held in memory at once.
        max_messages: archived messages held in memory at once, all sessions together
            (about 0.7 KB each with the default policy).
        wait: seconds a request waits for a turn already running on its session before
            it is answered 409.

    Past either limit the least recently used idle sessions are released (never the one
    used last); a released session is read back from the store when it is used again.
    """

    def __init__(self, store: Store, *, limit: int, max_messages: int, wait: float) -> None:
        self.store = store
        self.limit = limit
        self.max_messages = max_messages
        self.wait = wait
        self.messages = 0  # archived messages held, all sessions together
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        # a process-local store has no other writer to catch up with
        self._shared = not isinstance(store, InMemoryStore)
        # a durable store's writes go to a thread: an fsync, a WAL checkpoint (every few hundred
        # SQLite commits, even with synchronous=normal) or a network round trip never stalls other turns
        self.write_in_thread = self._shared

    def __len__(self) -> int:
        return len(self._entries)

    @asynccontextmanager
    async def turn(self, name: str, open_memory: Callable[[str], Memory]) -> AsyncIterator[Session]:
        """Hold session ``name`` for one turn: wait (bounded) for a turn already on it, then read it up to date.

        ``open_memory`` builds the session's :class:`Memory` on the store when this
        process does not hold it yet.
        """
        entry = self._entries.get(name)
        if entry is None:
            entry = self._entries[name] = _Entry()
        self._entries.move_to_end(name)
        entry.users += 1
        try:
            try:
                await asyncio.wait_for(entry.lock.acquire(), self.wait)
            except asyncio.TimeoutError:
                raise session_busy(
                    f"another turn on this session was still running after {self.wait:g} s; "
                    "retry when it is done (turns on one session run one at a time)",
                    retry_after=min(self.wait, 5.0),
                ) from None
            held = len(entry.memory) if entry.memory is not None else 0
            try:
                if entry.memory is None:
                    entry.memory = await asyncio.to_thread(open_memory, name)
                    entry.system = _newest_system(entry.memory)
                    _settle(entry.memory)
                elif self._shared:
                    before = len(entry.memory)
                    entry.memory.refresh()
                    if len(entry.memory) != before:  # another process wrote to it
                        entry.system = _newest_system(entry.memory)
                yield Session(entry)
            finally:
                self.messages += (len(entry.memory) if entry.memory is not None else 0) - held
                entry.lock.release()
        finally:
            entry.users -= 1
            self._evict()

    def _evict(self) -> None:
        if len(self._entries) <= self.limit and self.messages <= self.max_messages:
            return
        for name, entry in list(self._entries.items())[:-1]:  # least recently used first; never the latest
            if len(self._entries) <= self.limit and self.messages <= self.max_messages:
                return
            if entry.users == 0:
                del self._entries[name]
                self.messages -= len(entry.memory) if entry.memory is not None else 0


def _settle(memory: Memory) -> None:
    """Take a long archive just loaded out of the cyclic garbage collector's way.

    A loaded session is several objects per message, all long-lived, and the collector
    walked them again and again: with 50 sessions of 10,000 messages, a full pass took
    200 ms and stalled every turn in flight (the p99 of ``bench_serve.py``).
    ``gc.freeze()`` moves every object alive now into the generation the collector never
    walks. An archive holds no reference cycles, so a released session is still freed, by
    reference counting. What else is frozen with it stays until the process ends if it
    was a cycle of garbage (a few objects of the requests in flight); only archives of
    ``FREEZE_AT`` messages or more are worth that.
    """
    if len(memory) >= FREEZE_AT:
        gc.freeze()


def _newest_system(memory: Memory) -> str | None:
    for message in reversed(memory.messages):
        if message.role == "system":
            return message.content
    return None
