"""The layout engine every built-in policy feeds: what persists first, what churns last.

A policy says what is worth keeping (pinned turns, a running summary, turns retrieved
or ranked for the query); :class:`Layout` decides where it goes and keeps the prompt's
beginning stable from one turn to the next, so every prefix cache in front of a model
(a local KV cache, vLLM and SGLang prefix caching, llama.cpp's slot, OpenAI's prompt
caching, Anthropic's ``cache_control``) serves most of the prompt again.

After the system messages and the running summary (placed by the memory), a context
holds the pinned turns, then the *window*, then the *tail*, then the newest turn:

- the window is every turn from its first one on, in conversation order: it always
  holds the newest ``recent_turns`` turns, grows by the turns answered since the last
  context, and when it outgrows its room it drops in one step to ``low_water`` of it
  (the newest turns that fit); the summary folds what it dropped at that moment only.
  Between evictions the previous prompt's head and window are a prefix of the next one.
- the tail is what this query wants (ranked turns, or retrieved messages grouped by
  turn), within the room the window leaves and at most the policy's :meth:`query_room`,
  in conversation order. It changes every turn, so it goes last.

So a turn costs a prefix cache its tail, the previous turn and the new message: a policy
keeps the cache warm by keeping its tail short (``hybrid`` reserves a bounded room for it
and shortens it for queries that match weakly), not by moving it. Retrieved turns were
measured staying in place instead (an append-only log after the window: each turn appends
what it retrieved that is not there yet, evictions cut from the front in low-water steps).
On the LoCoMo dev split replayed as a chat at 2,048 tokens with ``hybrid`` (600 retrieval
tokens of whole turns), median / mean prefix reuse: log 0.637 / 0.427 and tail 0.586 /
0.536 at ``low_water=0.6``; log 0.056 / 0.204 and tail 0.615 / 0.509 at 0.8. Consecutive
questions share only 20-35 % of their retrieved tokens, so the log fills and evicts every
other turn; the tail keeps more of the prompt cached on average.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._message import Message
from .._turns import Turn
from ._base import Policy, PolicyInput, Selection
from ._options import check_ints
from ._summary import RunningSummary, summary_floor

#: Date-marked copies of turns kept between contexts (by turn number).
_MARKED_CACHE = 1024

#: The defaults of the options every built-in policy shares.
RECENT_TURNS = 3
LOW_WATER = 0.8


@dataclass
class Layout(Policy):
    """The shared base of the built-in policies: continuity, a stable-first layout, low-water steps.

    Subclasses feed it through a few hooks: :meth:`pinned` (turns kept whatever the
    query), :meth:`wanted` (turns worth keeping for this query, most wanted first),
    :attr:`running_summary` (a summary of what left the context) and :meth:`dates`
    (session dates to mark). The engine places them; see the module's documentation.

    Options (every built-in policy has them, keyword-only):
        recent_turns: how many of the newest answered turns are always in the context,
            whatever the query, while they fit in half the budget: the exchanges a reply
            like "yes, do that" refers to (an answered newest turn counts). Default 3.
        low_water: the share of its room the window drops to when it must evict, in
            (0, 1); the window then grows again by appending, so the prompt keeps its
            beginning between evictions. ``None`` drops one turn at a time instead (every
            context as full as possible, its beginning moving every turn). Default 0.8.
    """

    name = "layout"
    recent_turns: int = field(default=RECENT_TURNS, kw_only=True)
    low_water: float | None = field(default=LOW_WATER, kw_only=True)
    _start: int | None = field(default=None, init=False, repr=False, compare=False)
    _marked: dict[int, tuple[str, Message, Turn]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_ints(self, ("recent_turns",), 0)
        lw = self.low_water
        if lw is not None and (isinstance(lw, bool) or not isinstance(lw, (int, float)) or not 0 < lw < 1):
            raise ValueError(f"low_water must be None or a share of the budget between 0 and 1, got {lw!r}")

    # -- hooks ---------------------------------------------------------------------------

    def pinned(self, view: PolicyInput) -> list[Turn]:
        """Older turns kept whatever the query, oldest first (within their own bound)."""
        return []

    def wanted(self, view: PolicyInput, room: int, taken: set[int]) -> list[Turn]:
        """Older turns worth keeping for this query, most wanted first, costing at most ``room``.

        ``taken`` holds the numbers of turns already kept (pinned, recent).
        """
        return []

    @property
    def running_summary(self) -> RunningSummary | None:
        """The summary of what left the context, for policies that keep one."""
        return None

    def summary_room(self, budget: int) -> int:
        """The most tokens the summary message may take in a context of ``budget`` tokens."""
        return 0

    def dates(self) -> Mapping[int, str]:
        """Session dates by turn number: each run of kept turns of one date opens with it."""
        return {}

    # -- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Where the window starts (a turn number), and the summary of a policy that keeps one."""
        summary = self.running_summary
        state: dict[str, Any] = summary.state() if summary is not None else {}
        if self._start is not None:
            state["start"] = self._start
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        start = state.get("start")
        if start is not None and (not isinstance(start, int) or isinstance(start, bool)):
            raise ValueError(f"a layout state's start must be a turn number, got {start!r}")
        summary = self.running_summary
        if summary is not None:
            summary.load_state({k: v for k, v in state.items() if k != "start"})
        self._start = start

    def on_remove(self, turns: Sequence[Turn]) -> None:
        for turn in turns:
            self._marked.pop(turn.number, None)

    # -- the engine ----------------------------------------------------------------------------

    def select(self, view: PolicyInput) -> Selection:
        turns = view.turns
        if not turns or view.budget <= 0:
            self._start = None
            return Selection(turns=[], ordered=True, stable=_count(view.newest))
        pinned = self.pinned(view)
        taken = {t.number for t in pinned}
        room = view.budget - sum(view.tokens(t) for t in pinned)
        recent = self._recent(view, taken)
        kept = sum(view.tokens(t) for t in recent)
        summary = self.running_summary
        summary_room = (
            min(self.summary_room(view.budget), room - kept) if summary is not None else 0
        )  # continuity first
        if summary_room < summary_floor(view.counter) or (
            summary is not None and summary.covered < 0 and _fits(turns, taken, view, room)
        ):
            summary_room = 0  # no room for a useful summary, or everything fits: nothing to summarize yet
        room -= summary_room

        cap = self.query_room(view)
        limit = max(kept, room - cap)
        window = self._window(view, taken, recent, limit)
        evicted = window is None
        if window is None:  # the window outgrew its room: down to the low-water mark in one step
            target = limit if self.low_water is None else int(limit * self.low_water)
            window = (
                self._low_water_window(view, taken, recent, target)
                or self._low_water_window(view, taken, recent, limit)[-1:]
            )  # nothing fits the mark: the newest turn that fits at all
        self._start = window[0].number if window else None
        taken.update(t.number for t in window)
        used = sum(view.tokens(t) for t in window)
        wanted = self.wanted(view, min(cap, room - used), taken) if cap else []
        body = self._fit_marked(window, wanted, view, room)

        prefix: list[Message] = []
        summary_tokens = 0
        if summary is not None and summary_room > 0:
            if evicted:
                summary.fold_until(turns, _index_of(turns, self._start), view.counter, view.deadline)
            message, summary_tokens = summary.message(summary_room, view.counter)
            prefix = [message] if message is not None else []
        placed = self._marked_run(pinned, view)[0] + body
        stable = len(prefix) + sum(len(t.messages) for t in self._marked_run(pinned, view)[0])
        if self._keeps_window(view, used, limit, recent):
            stable += sum(len(t.messages) for t in window)
            if len(body) == len(window):  # no tail: the newest turn stays too
                stable += _count(view.newest)
        elif summary is not None:
            stable = 0  # the next eviction folds the summary
        return Selection(turns=placed, prefix=prefix, summary_tokens=summary_tokens, ordered=True, stable=stable)

    def query_room(self, view: PolicyInput) -> int:
        """The most tokens :meth:`wanted` may fill in this context (0: the window may take the whole room)."""
        return 0

    def _recent(self, view: PolicyInput, taken: set[int]) -> list[Turn]:
        """The newest older turns holding the last ``recent_turns`` answered turns, while they fit in half the budget.

        A turn counts when it holds an answer (a message that is not the user's); an
        answered newest turn (the memory places it) counts too, so a context built after
        a reply needs one older turn fewer than one built for a new question.
        """
        newest = view.newest
        answered = int(newest is not None and _answered(newest))
        recent: list[Turn] = []
        left = view.budget // 2
        for turn in reversed(view.turns):
            if answered >= self.recent_turns:
                break
            answered += _answered(turn)
            if turn.number in taken:
                continue
            cost = view.tokens(turn)
            if cost > left:
                break
            recent.append(turn)
            left -= cost
        return recent

    def _window(self, view: PolicyInput, taken: set[int], recent: list[Turn], limit: int) -> list[Turn] | None:
        """The turns from the window's first one to the newest, or None when they outgrow ``limit``."""
        oldest = recent[-1].number if recent else None
        if self._start is None or self.low_water is None or (oldest is not None and oldest < self._start):
            return None  # no window yet, none wanted, or one that lost the recent turns (a stale state)
        window: list[Turn] = []
        for turn in reversed(view.turns):
            if turn.number < self._start:
                break
            if turn.number in taken:
                continue
            limit -= view.tokens(turn)
            if limit < 0:
                return None
            window.append(turn)
        window.reverse()
        return window

    def _low_water_window(self, view: PolicyInput, taken: set[int], recent: list[Turn], target: int) -> list[Turn]:
        """The recent turns and the newest turns before them that fit ``target`` together, oldest first."""
        window = list(recent)
        used = sum(view.tokens(t) for t in recent)
        oldest = recent[-1].number if recent else None
        for turn in reversed(view.turns):
            if (oldest is not None and turn.number >= oldest) or turn.number in taken:
                continue
            cost = view.tokens(turn)
            if used + cost > target:
                break
            window.append(turn)
            used += cost
        window.reverse()
        return window

    def _fit_marked(self, window: list[Turn], wanted: list[Turn], view: PolicyInput, room: int) -> list[Turn]:
        """The window, then ``wanted`` (most wanted first) in conversation order, with their date marks.

        The least wanted turns go until the marks fit too.
        """
        while True:
            marked, cost = self._marked_run(window + sorted(wanted, key=_number), view)
            if cost <= room or not wanted:
                return marked
            wanted = wanted[:-1]

    def _marked_run(self, run: list[Turn], view: PolicyInput) -> tuple[list[Turn], int]:
        """``run`` with each stretch of one session date opened by ``[date]``, and its cost.

        A turn is marked when its date differs from the turn before it in ``run``, so
        appending to a run never changes the marks of what is already in it.
        """
        dates = self.dates()
        out = []
        cost = 0
        previous: str | None = None
        for turn in run:
            date = dates.get(turn.number)
            if date is None or date == previous or not turn.messages:
                out.append(turn)
                cost += view.tokens(turn)
                previous = date if date is not None else previous
                continue
            head = turn.messages[0]
            cached = self._marked.get(turn.number)
            if cached is None or cached[:2] != (date, head) or cached[2].messages[1:] != turn.messages[1:]:
                if len(self._marked) >= _MARKED_CACHE:
                    self._marked.clear()
                marked = Turn(turn.number, [head.with_content(f"[{date}] {head.content}"), *turn.messages[1:]])
                cached = (date, head, marked)  # a part of a turn (some of its lines) has its own head
                self._marked[turn.number] = cached
            out.append(cached[2])
            cost += view.tokens(cached[2])
            previous = date
        return out, cost

    def _keeps_window(self, view: PolicyInput, used: int, limit: int, recent: list[Turn]) -> bool:
        """Whether the next context is expected to keep this window (grown by one turn) rather than evict.

        It adds the newest turn with its reply: about one turn of the size of the recent ones.
        """
        if self.low_water is None:
            return False
        newest = view.newest.tokens(view.counter) if view.newest is not None else 0
        sizes = [view.tokens(t) for t in recent] or [newest]
        return used + max(newest, sum(sizes) / len(sizes)) <= limit


def _number(turn: Turn) -> int:
    return turn.number


def _answered(turn: Turn) -> bool:
    return any(m.role != "user" for m in turn.messages)


def _count(turn: Turn | None) -> int:
    return len(turn.messages) if turn is not None else 0


def _fits(turns: Sequence[Turn], skip: set[int], view: PolicyInput, room: int) -> bool:
    """Whether all of ``turns`` but ``skip`` fit ``room`` (stops counting as soon as they do not)."""
    for turn in reversed(turns):
        if turn.number not in skip:
            room -= view.tokens(turn)
            if room < 0:
                return False
    return True


def _index_of(turns: Sequence[Turn], number: int | None) -> int:
    """The index in ``turns`` (consecutive numbers) of turn ``number``; ``len(turns)`` for None."""
    if number is None:
        return len(turns)
    return max(0, min(len(turns), number - turns[0].number))
