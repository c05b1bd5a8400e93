"""``Memory``: the archive of a conversation and the finite context built from it each turn."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from ._context import Context, TurnStats
from ._counting import TokenCounter
from ._errors import PolicyTimeout, StoreError
from ._message import Message
from ._tokenizer import ApproxTokenizer, Tokenizer
from ._truncate import fit_messages, marked_cost
from ._turns import Turn, TurnWindow
from .policies import Policy, PolicyInput, Selection, Sliding
from .stores import Store, StoreConflict, open_store
from .stores._base import paused_gc

#: How many times ``extend`` re-stamps a batch that lost a race with another writer.
_MAX_CONFLICTS = 1000

#: The smallest context budget (``max_tokens - reserve_output``) a memory accepts.
MIN_BUDGET = 32


class Memory:
    """A conversation's full archive and the finite context a policy builds from it.

    Args:
        policy: a registered policy name (``"sliding"``, ``"semantic"``, ``"hybrid"``...)
            or a :class:`~finite_memory.policies.Policy` instance.
        max_tokens: the model's context budget, prompt and reply together.
        reserve_output: tokens kept free for the reply; defaults to a quarter of
            ``max_tokens``, at most 1,024. The context never exceeds
            ``max_tokens - reserve_output`` tokens.
        system: a system prompt, always first in the context.
        tokenizer: counts tokens; defaults to :class:`ApproxTokenizer`. A ``Chat``
            switches it to the backend's exact tokenizer when the backend has one.
        max_policy_ms: a latency budget for the policy; a policy that overruns it falls
            back to the sliding window for that turn (counted in ``TurnStats.fallback``).
        store: where the archive lives: a URL (``"sqlite:///chats.db"``), a
            :class:`~finite_memory.stores.Store`, or ``None`` for in-process memory.
        session: the conversation's name inside the store.
        **policy_options: options for a policy given by name (``sink_turns=2``...).
    """

    def __init__(
        self,
        policy: str | Policy = "sliding",
        max_tokens: int = 2048,
        reserve_output: int | None = None,
        system: str | None = None,
        *,
        tokenizer: Tokenizer | None = None,
        max_policy_ms: float | None = None,
        store: str | Store | None = None,
        session: str = "default",
        **policy_options: Any,
    ) -> None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
            raise TypeError(f"max_tokens must be an int, not {type(max_tokens).__name__}")
        if reserve_output is None:
            reserve_output = min(1024, max_tokens // 4)
        if not isinstance(reserve_output, int) or isinstance(reserve_output, bool):
            raise TypeError(f"reserve_output must be an int, not {type(reserve_output).__name__}")
        if max_tokens <= 0 or reserve_output < 0:
            raise ValueError(f"max_tokens must be > 0 and reserve_output >= 0, got {max_tokens} and {reserve_output}")
        if reserve_output >= max_tokens:
            raise ValueError(f"reserve_output ({reserve_output}) must be smaller than max_tokens ({max_tokens})")
        if max_tokens - reserve_output < MIN_BUDGET:
            raise ValueError(
                f"max_tokens - reserve_output must leave at least {MIN_BUDGET} tokens for the context, "
                f"got {max_tokens} - {reserve_output}"
            )
        if system is not None and not isinstance(system, str):
            raise TypeError(f"system must be a str or None, not {type(system).__name__}")
        if max_policy_ms is not None and (not isinstance(max_policy_ms, (int, float)) or max_policy_ms <= 0):
            raise ValueError(f"max_policy_ms must be a positive number or None, got {max_policy_ms!r}")
        if not isinstance(session, str) or not session:
            raise ValueError(f"session must be a non-empty string, got {session!r}")

        self.max_tokens = max_tokens
        self.reserve_output = reserve_output
        self.system = system
        self.max_policy_ms = max_policy_ms
        self.session = session
        self._policy = _make_policy(policy, policy_options)
        self._counter = TokenCounter(tokenizer if tokenizer is not None else ApproxTokenizer())
        self._messages: list[Message] = []
        self._turns: list[Turn] = []
        self._pinned: list[Message] = []
        self._archived = 0  # non-system messages held in turns
        self._store = open_store(store)
        self._saved_state: str | None = None
        with paused_gc():
            self._apply(self._store.messages(session))
        self._restore_state(self._store.read_state(session))
        self._enforce_retention()

    def __repr__(self) -> str:
        return (
            f"Memory(policy={self._policy.name!r}, max_tokens={self.max_tokens}, "
            f"reserve_output={self.reserve_output}, messages={len(self._messages)}, turns={len(self._turns)})"
        )

    def __len__(self) -> int:
        return len(self._messages)

    # -- what the memory holds ------------------------------------------------------

    @property
    def policy(self) -> Policy:
        return self._policy

    @property
    def tokenizer(self) -> Tokenizer:
        return self._counter.tokenizer

    @property
    def budget(self) -> int:
        """The most tokens a context may hold: ``max_tokens - reserve_output``."""
        return self.max_tokens - self.reserve_output

    @property
    def messages(self) -> list[Message]:
        """A copy of the whole archive, in order (system messages included)."""
        return list(self._messages)

    @property
    def turns(self) -> Sequence[Turn]:
        """The archived turns, oldest first (a read-only view)."""
        return TurnWindow(self._turns, len(self._turns))

    @property
    def store(self) -> Store:
        return self._store

    def use_tokenizer(self, tokenizer: Tokenizer) -> None:
        """Count with ``tokenizer`` from now on; cached counts refresh as they are used."""
        self._counter = TokenCounter(tokenizer)

    # -- adding -----------------------------------------------------------------------

    def add(self, role: str, content: str, **fields: Any) -> Message:
        """Archive one message and return it with its ``id`` and ``turn``.

        ``fields`` are the other :class:`Message` fields: ``name``, ``tool_calls``,
        ``tool_call_id``, ``meta``.
        """
        return self.extend([_new_message(role, content, fields)])[0]

    def extend(self, messages: Iterable[Message], *, if_unchanged: bool = False) -> list[Message]:
        """Archive several messages at once: all of them, or none if one is invalid.

        With a durable store the batch is written in one transaction before this
        returns. When another writer added to the same session meanwhile, the memory
        reads what it missed and stamps the batch again after it; with
        ``if_unchanged=True`` it reads what it missed and raises
        :class:`~finite_memory.stores.StoreConflict` instead, archiving nothing (for a
        reply built on a context that did not hold the other writer's messages).
        """
        batch = list(messages)
        for message in batch:
            if not isinstance(message, Message):
                raise TypeError(f"extend() takes Message objects, not {type(message).__name__}")
        if not batch:
            return []
        for _ in range(_MAX_CONFLICTS):
            stamped = self._stamp(batch)
            state = self._changed_state()
            try:
                self._store.append(self.session, stamped, state=state)
            except StoreConflict:
                self._catch_up()
                if if_unchanged:
                    raise
                continue
            if state is not None:
                self._saved_state = state
            self._apply(stamped)
            self._enforce_retention()
            return stamped
        raise StoreError(f"session {self.session!r}: gave up after {_MAX_CONFLICTS} write conflicts with other writers")

    def refresh(self) -> int:
        """Read what other writers (threads, processes) appended to this session since this
        memory last read it; returns how many messages that was."""
        last = self._messages[-1].id if self._messages else -1
        missed = self._store.messages(self.session, after=last)
        if missed:
            self._catch_up(missed)
        return len(missed)

    def _catch_up(self, missed: list[Message] | None = None) -> None:
        """Apply what other writers appended to this session since our last message.

        When the store's retention already dropped some of those messages, the view is
        rebuilt from the store's rows, so the memory and the store keep the same turns.
        """
        last = self._messages[-1].id if self._messages else -1
        if missed is None:
            missed = self._store.messages(self.session, after=last)
        if not missed:
            raise StoreError(f"session {self.session!r} changed under this memory (deleted?); reopen it")
        if missed[0].id != last + 1:  # type: ignore[operator]
            if self._turns:
                self._policy.on_remove(list(self._turns))
            self._messages.clear()
            self._turns.clear()
            self._pinned.clear()
            self._archived = 0
            missed = self._store.messages(self.session)
        self._apply(missed)
        self._enforce_retention()

    def _changed_state(self) -> str | None:
        """The policy's state as JSON when it changed since it was last written, else None."""
        state = self._policy.state()
        if not state and self._saved_state is None:
            return None
        text = json.dumps(
            {"policy": self._policy.name, "state": state},
            sort_keys=True,
            separators=(",", ":"),
        )
        return None if text == self._saved_state else text

    def _restore_state(self, text: str | None) -> None:
        """Load the policy state a store kept for this session, when it is this policy's."""
        if not text:
            return
        saved = json.loads(text)
        if saved.get("policy") == self._policy.name:
            self._policy.load_state(saved["state"])
            self._saved_state = text

    def _enforce_retention(self) -> None:
        """Drop whole oldest turns while the archive holds more than the store's cap.

        The same rule as the store's (:func:`~finite_memory.stores.retained_from`), so the
        memory's view and the store's rows agree; the policy hears of it via ``on_remove``.
        """
        cap = self._store.max_messages
        if cap is None or self._archived <= cap:
            return
        excess = self._archived - cap
        drop = 0
        while excess > 0 and drop < len(self._turns) - 1:
            excess -= len(self._turns[drop].messages)
            drop += 1
        if not drop:
            return
        dropped = self._turns[:drop]
        del self._turns[:drop]
        self._archived -= sum(len(t.messages) for t in dropped)
        last_dropped = dropped[-1].number
        cut = 0
        kept_system = []
        for message in self._messages:
            if message.turn is not None and message.turn > last_dropped:
                break
            if message.role == "system":
                kept_system.append(message)
            cut += 1
        self._messages[:cut] = kept_system
        self._policy.on_remove(dropped)

    def _stamp(self, batch: list[Message]) -> list[Message]:
        """The batch with ids and turn numbers, checked for tool pairing; changes nothing."""
        next_id = self._messages[-1].id + 1 if self._messages else 0  # type: ignore[operator]
        turn_number = self._turns[-1].number if self._turns else -1
        calls = self._turns[-1].open_tool_calls() if self._turns else set()
        stamped = []
        for message in batch:
            if message.role == "user":
                turn_number += 1
                calls = set()
            elif message.role != "system":
                turn_number = max(turn_number, 0)
            if message.role == "tool" and message.tool_call_id not in calls:
                known = ", ".join(sorted(calls)) or "none"
                raise ValueError(
                    f"tool result for {message.tool_call_id!r} answers no tool call of the current turn "
                    f"(open calls: {known}); add the assistant message with its tool_calls first"
                )
            calls.update(message.tool_call_ids)
            stamped.append(replace(message, id=next_id, turn=max(turn_number, 0)))
            next_id += 1
        return stamped

    def _apply(self, stamped: Sequence[Message]) -> None:
        for message in stamped:
            self._messages.append(message)
            if message.role == "system":
                self._pinned.append(message)
                continue
            if not self._turns or message.turn != self._turns[-1].number:
                self._turns.append(Turn(message.turn if message.turn is not None else len(self._turns)))
            turn = self._turns[-1]
            turn.messages.append(message)
            self._archived += 1
            self._policy.on_add(turn, message)

    # -- building a context -----------------------------------------------------------

    def context(self, query: str | None = None) -> Context:
        """The messages to send now, within the budget, system first.

        ``query`` is what the next reply is about (the user's question); retrieval
        policies use it, the sliding window ignores it.
        """
        if query is not None and not isinstance(query, str):
            raise TypeError(f"query must be a str or None, not {type(query).__name__}")
        return self._build(query, ())

    def _build(self, query: str | None, pending: Sequence[Message]) -> Context:
        """Build a context; ``pending`` holds messages not archived yet (``Chat`` uses it).

        Pending messages that start with a user message are a new turn; others (tool
        results) continue the newest archived turn, which then stays whole in the context.
        """
        counter = self._counter
        room = self.budget - counter.base()
        if pending and pending[0].role != "user" and self._turns:
            newest: Turn | None = Turn(self._turns[-1].number, [*self._turns[-1].messages, *pending])
            older = TurnWindow(self._turns, len(self._turns) - 1)
        elif pending:
            newest = Turn(self._turns[-1].number + 1 if self._turns else 0, list(pending))
            older = TurnWindow(self._turns, len(self._turns))
        else:
            newest = self._turns[-1] if self._turns else None
            older = TurnWindow(self._turns, len(self._turns) - 1)

        pinned = ([Message("system", self.system)] if self.system else []) + self._pinned
        pinned, newest_msgs, truncated = self._fit_fixed(pinned, newest, room)
        fixed = sum(counter.message(m) for m in pinned) + sum(counter.message(m) for m in newest_msgs)
        view = PolicyInput(turns=older, budget=max(0, room - fixed), query=query, counter=counter, newest=newest)
        selection, elapsed_ms, fallback = self._run_policy(view)

        chosen = sorted({t.number: t for t in selection.turns if t is not newest}.values(), key=lambda t: t.number)
        prefix = list(selection.prefix)
        while True:
            messages = pinned + prefix + [m for t in chosen for m in t.messages] + newest_msgs
            tokens = counter.messages(messages)
            if tokens <= self.budget:
                break
            if chosen:  # the estimate was off (a tokenizer that is not additive): drop the oldest
                chosen.pop(0)
            elif prefix:
                prefix.clear()
            elif newest_msgs:
                cut = fit_messages(
                    newest_msgs, sum(counter.message(m) for m in newest_msgs) - (tokens - self.budget), counter
                )
                truncated += 1
                newest_msgs = cut or []
            elif pinned:
                pinned = []
            else:
                break  # an empty prompt over budget: nothing left to cut
        stats = TurnStats(
            policy=self._policy.name,
            policy_ms=elapsed_ms,
            fallback=fallback,
            candidates=len(older),
            dropped=len(older) - len(chosen),
            summary_tokens=selection.summary_tokens if prefix else 0,
            truncated=truncated,
        )
        included = [m.id for m in messages if m.id is not None]
        return Context(messages=messages, tokens=tokens, included=included, stats=stats, budget=self.budget)

    def _fit_fixed(
        self, pinned: list[Message], newest: Turn | None, room: int
    ) -> tuple[list[Message], list[Message], int]:
        """Pinned system messages and the newest turn, cut to fit ``room`` together."""
        counter = self._counter
        newest_msgs = list(newest.messages) if newest else []
        pinned_cost = sum(counter.message(m) for m in pinned)
        newest_cost = sum(counter.message(m) for m in newest_msgs)
        if pinned_cost + newest_cost <= room:
            return pinned, newest_msgs, 0
        truncated = 0
        pinned_room = min(pinned_cost, max(room - newest_cost, room // 2 if newest_msgs else room))
        if pinned_cost > pinned_room:
            fitted = fit_messages(pinned, pinned_room, counter)
            while fitted is None and len(pinned) > 1:  # too many to cut: drop the oldest added ones first
                pinned = pinned[:1] + pinned[2:]
                fitted = fit_messages(pinned, pinned_room, counter)
            if fitted is None:  # its share is smaller than a marker: the system prompt still goes first
                fitted = fit_messages(pinned, max(pinned_room, marked_cost(pinned[0], counter)), counter)
            pinned = fitted or []
            truncated += len(pinned)
        newest_room = room - sum(counter.message(m) for m in pinned)
        if newest_cost > newest_room:
            fitted = fit_messages(newest_msgs, newest_room, counter)
            if fitted is None:  # too many messages for even their markers: keep the question
                questions = [m for m in newest_msgs if m.role == "user"]
                fitted = fit_messages(questions, newest_room, counter) if questions else None
            newest_msgs = fitted or []
            truncated += 1
        return pinned, newest_msgs, truncated

    def _run_policy(self, view: PolicyInput) -> tuple[Selection, float, bool]:
        start = time.perf_counter()
        if self.max_policy_ms is not None:
            view.deadline = start + self.max_policy_ms / 1000
        try:
            selection: Selection | None = self._policy.select(view)
        except PolicyTimeout:
            selection = None
        elapsed_ms = (time.perf_counter() - start) * 1000
        if selection is None or (self.max_policy_ms is not None and elapsed_ms > self.max_policy_ms):
            view.deadline = None
            return Sliding().select(view), elapsed_ms, True
        return selection, elapsed_ms, False

    # -- checkpoints ------------------------------------------------------------------

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint of the whole memory to ``path``, atomically.

        The file is versioned, checksummed JSON (no pickle); the previous file at
        ``path`` stays intact until the new one is completely on disk.
        """
        from ._checkpoint import save

        save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, tokenizer: Tokenizer | None = None) -> Memory:
        """A memory restored from a checkpoint written by :meth:`save`.

        Raises :class:`~finite_memory.CheckpointError` saying what is wrong with a bad
        file, which is left untouched. ``tokenizer`` replaces the saved one (a checkpoint
        keeps only the calibration of an :class:`ApproxTokenizer`).
        """
        from ._checkpoint import load

        return load(path, tokenizer=tokenizer)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the store (a no-op for the in-process one)."""
        self._store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _new_message(role: str, content: str, fields: dict[str, Any]) -> Message:
    given = set(fields) & {"id", "turn"}
    if given:
        raise TypeError(f"{', '.join(sorted(given))} is given by the memory, not by add()")
    allowed = {"name", "tool_calls", "tool_call_id", "meta"}
    unknown = set(fields) - allowed
    if unknown:
        raise TypeError(f"unknown message fields: {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(allowed))}")
    return Message(role, content, **fields)  # type: ignore[arg-type]


def _make_policy(policy: str | Policy, options: dict[str, Any]) -> Policy:
    if isinstance(policy, Policy):
        if options:
            raise TypeError("policy options go to a policy given by name; this one is already built")
        return policy
    if isinstance(policy, str):
        from ._registry import load_policy

        return load_policy(policy, **options)
    raise TypeError(f"policy must be a name or a Policy instance, not {type(policy).__name__}")
