"""A bounded running summary of the turns older than a moving point, folded in incrementally."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .._counting import TokenCounter
from .._message import Message
from .._salience import LABEL
from .._turns import Turn
from ..summarizers import Summarizer

#: The most chunks of a backlog folded at once; older turns of a longer backlog are skipped.
BACKLOG_CHUNKS = 32

#: Budgets for a shortened summary are rounded down to a multiple of this many tokens.
_STEP = 32

#: Shortened summaries cached at once.
_CACHED = 16

#: What the summary message says before the summary itself.
HEADER = "Summary of the earlier conversation:\n"


class RunningSummary:
    """The summary of every turn up to ``covered``, never more than ``max_tokens`` as a message.

    Turns are folded in oldest first, in chunks of at most ``chunk_tokens`` of text, so a
    summarizer never sees more than that at once (plus the previous summary). :meth:`advance` adds hysteresis: once
    a turn older than the recent window is still outside the summary, it folds up to the
    low-water mark, so the summarizer runs once per ``window - low_water`` tokens of new
    conversation rather than once a turn. Policies compose it (``rolling_summary``,
    ``hybrid``); :meth:`state` is what a checkpoint keeps. Inside a policy's ``select``::

        summary.advance(view.turns, window_start, low_water, view.counter)  # fold what left the window
        message, cost = summary.message(room_for_summary, view.counter)  # None, 0 when empty
        return Selection(turns=..., prefix=[message] if message else [], summary_tokens=cost)
    """

    def __init__(self, summarizer: Summarizer, max_tokens: int, chunk_tokens: int) -> None:
        self.summarizer = summarizer
        self.max_tokens = max_tokens
        self.chunk_tokens = chunk_tokens
        self.text = ""
        self.covered = -1  # the number of the newest turn folded in
        self.calls = 0  # summarizer calls made by this object (not saved)
        self._messages: dict[tuple[str, object, int], tuple[Message | None, int]] = {}  # message() cache

    def advance(self, turns: Sequence[Turn], window_start: int, low_water: int, counter: TokenCounter) -> bool:
        """Fold the turns of ``turns[:window_start]`` not summarized yet, and then some.

        ``turns`` are oldest first and ``turns[window_start:]`` is the recent window the
        caller shows. When an older turn is missing from the summary, the oldest turns of
        the window are folded too, until what stays unsummarized costs at most
        ``low_water`` tokens. Returns whether the summary changed.

        A backlog longer than ``BACKLOG_CHUNKS`` chunks (a policy put on a long archive,
        a first context after thousands of messages) is summarized from its newest
        chunks only, so one call never costs more than that many summarizer calls.
        """
        if window_start <= 0 or turns[window_start - 1].number <= self.covered:
            return False
        cut = window_start
        tail = sum(t.tokens(counter) for t in turns[window_start:])
        while cut < len(turns) and tail > low_water:
            tail -= turns[cut].tokens(counter)
            cut += 1
        first, backlog = cut, 0
        while first > 0 and turns[first - 1].number > self.covered:
            backlog += turns[first - 1].tokens(counter)
            if backlog > self.chunk_tokens * BACKLOG_CHUNKS:
                break  # a backlog this long is summarized from its newest part only
            first -= 1
        self.fold(turns[first:cut], counter)
        return True

    def fold(self, turns: Sequence[Turn], counter: TokenCounter) -> None:
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
                    self._fold_chunk(chunk, turn.number - 1, counter)
                    chunk, size = [], 0
                chunk.append(text)
                size += cost
        if turns:
            self._fold_chunk(chunk, turns[-1].number, counter)

    def _fold_chunk(self, texts: list[str], upto: int, counter: TokenCounter) -> None:
        if texts:
            self.text = self._fit(self.text, texts, self.max_tokens, counter)
        self.covered = upto

    def _fit(self, previous: str, texts: Sequence[str], bound: int, counter: TokenCounter) -> str:
        """A summary whose message costs at most ``bound`` tokens."""
        room = bound - counter.message(Message("system", HEADER))
        while room > 0:
            self.calls += 1
            text = self.summarizer.summarize(previous, texts, room, counter.text)
            if not text or counter.message(Message("system", HEADER + text)) <= bound:
                return text
            room -= max(1, room // 8)  # a summarizer that misjudges its bound gets a smaller one
        return ""

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
