"""A bounded running summary of the turns older than a moving point, folded in incrementally."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .._counting import TokenCounter
from .._errors import PolicyTimeout
from .._message import Message
from .._salience import LABEL
from .._turns import Turn
from ..summarizers import Summarizer

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

#: The most chunks of a backlog folded at once; older turns of a longer backlog are skipped.
BACKLOG_CHUNKS = 32

#: Budgets for a shortened summary are rounded down to a multiple of this many tokens.
_STEP = 32

#: Shortened summaries cached at once.
_CACHED = 16

#: What the summary message says before the summary itself.
HEADER = "Summary of the earlier conversation:\n"


def summary_floor(counter: TokenCounter) -> int:
    """The smallest room worth giving a summary: its header and half a ``_STEP`` of text."""
    return counter.message(Message("system", HEADER)) + _STEP // 2


class RunningSummary:
    """The summary of every turn up to ``covered``, never more than ``max_tokens`` as a message.

    Turns are folded in oldest first, in chunks of at most ``chunk_tokens`` of text, so a
    summarizer never sees more than that at once (plus the previous summary). The layout
    engine (:class:`~finite_memory.policies._layout.Layout`) calls :meth:`fold_until` only
    when it rebuilds the context in a low-water step, so the summarizer runs once per
    eviction, not once a turn; :meth:`state` is what a checkpoint keeps.

    With a deadline (``max_policy_ms``), the summarizer runs on a worker thread and is
    waited for until the deadline only: past it, :class:`~finite_memory.PolicyTimeout`
    is raised (the turn falls back to the sliding window) while the call finishes in the
    background, and its result is used by the next turn that folds the same text.
    """

    def __init__(self, summarizer: Summarizer, max_tokens: int, chunk_tokens: int) -> None:
        self.summarizer = summarizer
        self.max_tokens = max_tokens
        self.chunk_tokens = chunk_tokens
        self.text = ""
        self.covered = -1  # the number of the newest turn folded in
        self.calls = 0  # summarizer calls made by this object (not saved)
        self._messages: dict[tuple[str, object, int], tuple[Message | None, int]] = {}  # message() cache
        self._results: dict[tuple[Any, ...], Future[str]] = {}  # summarizer calls by their arguments
        self._worker: ThreadPoolExecutor | None = None

    def fold_until(
        self, turns: Sequence[Turn], start: int, counter: TokenCounter, deadline: float | None = None
    ) -> bool:
        """Fold the turns of ``turns[:start]`` not summarized yet; returns whether the summary changed.

        ``turns`` are oldest first. A backlog longer than ``BACKLOG_CHUNKS`` chunks (a
        policy put on a long archive, a first context after thousands of messages) is
        summarized from its newest chunks only, so one call never costs more than that
        many summarizer calls.
        """
        if start <= 0 or turns[start - 1].number <= self.covered:
            return False
        first, backlog = start, 0
        while first > 0 and turns[first - 1].number > self.covered:
            backlog += turns[first - 1].tokens(counter)
            if backlog > self.chunk_tokens * BACKLOG_CHUNKS:
                break  # a backlog this long is summarized from its newest part only
            first -= 1
        self.fold(turns[first:start], counter, deadline)
        return True

    def fold(self, turns: Sequence[Turn], counter: TokenCounter, deadline: float | None = None) -> None:
        """Fold ``turns`` (oldest first, all newer than ``covered``) into the summary.

        Each message goes to the summarizer as ``"speaker: text"`` (its name or role
        unless the text starts with a speaker label), cut to ``chunk_tokens``.
        """
        chunk: list[str] = []
        size = 0
        for turn in turns:
            if turn.number <= self.covered:
                raise ValueError(f"turn {turn.number} is already in the summary (covered up to {self.covered})")
            for message in turn.messages:
                if not message.content:
                    continue
                text = message.content
                if LABEL.match(text) is None:
                    text = f"{message.name or message.role}: {text}"
                cost = counter.text(text)
                if cost > self.chunk_tokens:
                    text, cost = text[: len(text) * self.chunk_tokens // cost], self.chunk_tokens
                if chunk and size + cost > self.chunk_tokens:
                    self._fold_chunk(chunk, turn.number - 1, counter, deadline)
                    chunk, size = [], 0
                chunk.append(text)
                size += cost
        if turns:
            self._fold_chunk(chunk, turns[-1].number, counter, deadline)

    def _fold_chunk(self, texts: list[str], upto: int, counter: TokenCounter, deadline: float | None) -> None:
        if texts:
            self.text = self._fit(self.text, texts, self.max_tokens, counter, deadline)
        self.covered = upto

    def _fit(
        self, previous: str, texts: Sequence[str], bound: int, counter: TokenCounter, deadline: float | None = None
    ) -> str:
        """A summary whose message costs at most ``bound`` tokens."""
        room = bound - counter.message(Message("system", HEADER))
        while room > 0:
            text = self._summarize(previous, texts, room, counter, deadline)
            if not text or counter.message(Message("system", HEADER + text)) <= bound:
                return text
            room -= max(1, room // 8)  # a summarizer that misjudges its bound gets a smaller one
        return ""

    def _summarize(
        self, previous: str, texts: Sequence[str], room: int, counter: TokenCounter, deadline: float | None
    ) -> str:
        """One summarizer call; with a deadline, on the worker thread and waited for until then."""
        if deadline is None:
            self.calls += 1
            return str(self.summarizer.summarize(previous, texts, room, counter.text))
        from concurrent.futures import ThreadPoolExecutor  # imports logging: only here, when a deadline is set
        from concurrent.futures import TimeoutError as Late

        key = (previous, tuple(texts), room, counter.key)
        future = self._results.get(key)
        if future is None:
            if self._worker is None:
                self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="finite-memory-summary")
            if len(self._results) >= _CACHED:
                self._results = {k: f for k, f in self._results.items() if not f.done()}
            self.calls += 1
            future = self._worker.submit(self.summarizer.summarize, previous, list(texts), room, counter.text)
            self._results[key] = future
        try:
            text = future.result(timeout=max(0.0, deadline - time.perf_counter()))
        except Late:
            raise PolicyTimeout("the summarizer ran past max_policy_ms; it goes on in the background") from None
        except BaseException:
            self._results.pop(key, None)  # a failed call is not remembered: the next fold tries again
            raise
        self._results.pop(key, None)
        return str(text)

    def message(self, bound: int, counter: TokenCounter) -> tuple[Message | None, int]:
        """The summary as a system message costing at most ``bound`` tokens, and its cost.

        When the stored summary costs more (a smaller budget, another tokenizer), a
        shorter copy is made for the context, its bound rounded down to a multiple of
        ``_STEP`` tokens so that budgets moving by a few tokens share one cached copy;
        the stored summary is untouched.
        """
        if not self.text:
            return None, 0
        full = self._cached((self.text, counter.key, 0), lambda: self.text, counter)
        if full[1] <= bound:
            return full
        step = bound - bound % _STEP if bound >= _STEP else bound
        return self._cached(
            (self.text, counter.key, step), lambda: self._fit("", self.text.splitlines(), step, counter), counter
        )

    def _cached(
        self, key: tuple[str, object, int], make: Callable[[], str], counter: TokenCounter
    ) -> tuple[Message | None, int]:
        if key not in self._messages:
            if len(self._messages) >= _CACHED:
                self._messages.clear()
            text = make()
            made = Message("system", HEADER + text) if text else None
            self._messages[key] = (made, counter.message(made) if made else 0)
        return self._messages[key]

    def state(self) -> dict[str, Any]:
        """The summary and the newest turn it covers (JSON-ready)."""
        return {"text": self.text, "covered": self.covered} if self.covered >= 0 else {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        text, covered = state.get("text", ""), state.get("covered", -1)
        if not isinstance(text, str) or not isinstance(covered, int) or isinstance(covered, bool):
            raise ValueError(f"a rolling summary state needs text (str) and covered (int), got {state!r}")
        self.text, self.covered = text, covered
