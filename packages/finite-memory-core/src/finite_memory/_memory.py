"""``Memory``: the archive of a conversation and the finite context built from it each turn."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from ._checkpoint_schema import check_archive
from ._context import Context, TurnStats, common_prefix
from ._counting import TokenCounter
from ._draft import Draft, select_on_draft
from ._erasure import int_list, locked, with_tool_partners
from ._errors import StoreError
from ._fitting import fit_budget, fit_fixed
from ._message import Message
from ._tokenizer import ApproxTokenizer, Tokenizer
from ._turns import Turn, TurnWindow
from ._values import check_text
from .policies import Policy, PolicyInput
from .stores import Store, StoreConflict, open_store
from .stores._base import paused_gc, session_gone

#: How many times ``extend`` re-stamps a batch that lost a race with another writer.
_MAX_CONFLICTS = 1000

#: The longest random pause between two attempts after repeated conflicts (jittered backoff).
_MAX_BACKOFF_S = 0.05

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
        if system is not None:
            system = check_text(system, "system")
        check_policy_budget(max_policy_ms)
        if not isinstance(session, str) or not session:
            raise ValueError(f"session must be a non-empty string, got {session!r}")
        session = check_text(session, "session")

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
        self._next_id = 0  # the id this memory's next append starts with
        self._exists = False  # whether the store had (or got) this session: then it must not vanish
        self._lock = threading.RLock()  # add, extend, context, save, forget never interleave
        self._store = open_store(store)
        self._owns_store = not isinstance(store, Store)  # opened from a URL: close() closes it
        self._saved_state: str | None = None
        self._revision = 0  # bumped whenever the policy state changes: a draft of an older one is stale
        try:
            self._load_session()
        except BaseException:
            if self._owns_store:  # nobody else can close it
                self._store.close()
            raise

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
    @locked
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

    @locked
    def extend(
        self, messages: Iterable[Message], *, context: Context | None = None, if_unchanged: bool = False
    ) -> list[Message]:
        """Archive several messages at once: all of them, or none if one is invalid.

        With a durable store the batch is written in one transaction before this
        returns. When another writer added to the same session meanwhile, the memory
        reads what it missed and stamps the batch again after it; with
        ``if_unchanged=True`` it reads what it missed and raises
        :class:`~finite_memory.stores.StoreConflict` instead, archiving nothing (for a
        reply built on a context that did not hold the other writer's messages).

        ``context``: the context (built by this memory for a turn not archived yet, as
        ``Chat`` does) that these messages answer. The policy state computed for it (a
        summary that moved on, the layout's log) is committed with the batch, in the
        same store transaction; without it, building that context changed nothing.
        A context built before another commit, or before another writer's messages,
        commits nothing: the next context is computed afresh.
        """
        batch = list(messages)
        for message in batch:
            if not isinstance(message, Message):
                raise TypeError(f"extend() takes Message objects, not {type(message).__name__}")
        if not batch:
            return []
        draft = self._draft_of(context)
        for attempt in range(_MAX_CONFLICTS):
            stamped = self._stamp(batch)
            state = self._changed_state(draft.state if draft is not None else None)
            try:
                self._store.append(self.session, stamped, state=state, create=not self._exists)
            except StoreConflict as conflict:
                if attempt:  # lost twice in a row: a hot session; spread the writers out
                    time.sleep(random.uniform(0, min(_MAX_BACKOFF_S, 0.0005 * 2**attempt)))
                self._catch_up(conflict.expected)
                if if_unchanged:
                    raise
                draft = None  # computed without the messages caught up with
                continue
            self._exists = True
            if state is not None:
                self._saved_state = state
            if draft is not None:
                self._commit(draft)
            self._apply(stamped)
            self._enforce_retention()
            return stamped
        raise StoreError(f"session {self.session!r}: gave up after {_MAX_CONFLICTS} write conflicts with other writers")

    def refresh(self) -> None:
        """Bring this memory up to date with what other writers did to its session in the store.

        Reads the messages other memories (threads, processes, hosts) appended since, and
        drops what another memory erased with :meth:`forget`. ``extend`` does this by
        itself when its append conflicts; a server that answers a session from several
        processes calls it before building a context. One cheap query when nothing changed.
        """
        with self._lock:
            expected = self._store.next_id(self.session)
            if expected is None:
                if self._exists:
                    raise StoreError(session_gone(self.session, repr(self._store)))
            elif expected != self._next_id:
                self._catch_up(expected)

    def _load_session(self) -> None:
        """Read the session's archive and policy state from the store (the whole view, from scratch)."""
        next_id = self._store.next_id(self.session)  # first: an append landing meanwhile is read below
        with paused_gc():
            stored = self._store.messages(self.session)
            try:
                check_archive(stored)
            except ValueError as exc:
                raise StoreError(f"{self._store!r}: session {self.session!r} is inconsistent: {exc}") from None
            self._apply(stored)
        self._exists = next_id is not None
        self._next_id = max(self._next_id, next_id or 0)
        self._restore_state(self._store.read_state(self.session))
        self._enforce_retention()

    def _catch_up(self, expected: int | None) -> None:
        """Apply what other writers did to this session since this memory last wrote or read it.

        Messages appended after ours are applied as they are. Anything else (the store's
        retention dropped turns this memory has not seen, another memory erased messages,
        which moves the next id past the last one) rebuilds the view from the store, so
        the memory and the store keep the same messages, turns and policy state.
        """
        start = self._next_id
        missed = self._store.messages(self.session, after=start - 1)
        consecutive = bool(missed) and missed[0].id == start and missed[-1].id == start + len(missed) - 1
        if consecutive and (expected is None or missed[-1].id + 1 >= expected):  # type: ignore[operator]
            self._apply(missed)
            self._enforce_retention()
            return
        if self._exists and self._store.next_id(self.session) is None:
            raise StoreError(session_gone(self.session, repr(self._store)))
        self._revision += 1
        if self._turns:
            self._policy.on_remove(list(self._turns))
        self._messages.clear()
        self._turns.clear()
        self._pinned.clear()
        self._archived = 0
        self._policy.load_state({})
        self._saved_state = None
        self._next_id = 0
        self._load_session()

    # -- erasing ------------------------------------------------------------------------

    def forget(self, ids: Iterable[int] = (), *, turns: Iterable[int] = ()) -> list[int]:
        """Erase messages for good: from the archive, the store, every policy index and the summary.

        ``ids`` are message ids, ``turns`` whole turn numbers. A tool call and its results
        go together: erasing one erases the other (a call without its result cannot be
        sent). The store deletes the rows in one transaction with the new policy state
        (see ``docs/stores.md`` for what each store leaves on disk); the policy forgets the
        turns through ``on_remove`` and relearns what remains of a partly erased turn
        through ``on_add``; its state is reset (``load_state({})``), since a running
        summary may quote erased text: the summary is built again from what remains.
        Checkpoints saved afterwards hold none of it. Other memories on the same session
        drop the messages at their next append or :meth:`refresh`.

        Returns the erased ids, ascending. An unknown id or turn raises ``ValueError``
        and erases nothing.
        """
        wanted_ids = int_list(ids, "ids")
        wanted_turns = int_list(turns, "turns")
        with self._lock:
            known = {m.id for m in self._messages}
            by_number = {t.number: t for t in self._turns}
            unknown = sorted(set(wanted_ids) - known)
            missing = sorted(set(wanted_turns) - set(by_number))
            if unknown or missing:
                what = ([f"ids {unknown}"] if unknown else []) + ([f"turns {missing}"] if missing else [])
                raise ValueError(
                    f"session {self.session!r} has no message with {' and no '.join(what)}; nothing erased"
                )
            erase = set(wanted_ids)
            for number in wanted_turns:
                erase.update(by_number[number].ids)
            for turn in self._turns:
                with_tool_partners(turn, erase)
            if not erase:
                return []
            before = self._policy.state()
            self._policy.load_state({})  # a summary may quote erased text: start it again
            state = self._state_blob()
            try:
                next_id = self._store.forget(self.session, sorted(erase), state=state)
            except BaseException:
                self._policy.load_state(before)  # nothing was erased: leave everything as it was
                raise
            self._drop(erase)
            self._revision += 1  # a draft built before this may quote what was erased
            self._saved_state = state
            if next_id == self._next_id + 1:  # no other writer in between: nothing to catch up on
                self._next_id = next_id
            return sorted(erase)

    def _drop(self, erase: set[int]) -> None:
        """Remove the messages with ids in ``erase`` from this memory's view and the policy's indexes."""
        self._messages[:] = [m for m in self._messages if m.id not in erase]
        self._pinned[:] = [m for m in self._pinned if m.id not in erase]
        affected = [t for t in self._turns if any(m.id in erase for m in t.messages)]
        if not affected:
            return
        self._policy.on_remove(affected)
        touched = {id(t) for t in affected}
        turns: list[Turn] = []
        for turn in self._turns:
            if id(turn) not in touched:
                turns.append(turn)
                continue
            kept = [m for m in turn.messages if m.id not in erase]
            self._archived -= len(turn.messages) - len(kept)
            if kept:
                rest = Turn(turn.number)
                turns.append(rest)
                for message in kept:
                    rest.messages.append(message)
                    self._policy.on_add(rest, message)
        self._turns[:] = turns

    def _changed_state(self, draft: dict[str, Any] | None = None) -> str | None:
        """The policy's state (or ``draft``) and the calibration as JSON when it changed since last written."""
        state = self._policy.state() if draft is None else draft
        calibration = self._calibration()
        if not state and not calibration and self._saved_state is None:
            return None
        text = self._state_blob(state, calibration)
        return None if text == self._saved_state else text

    def _state_blob(self, state: dict[str, Any] | None = None, calibration: dict[str, Any] | None = None) -> str:
        """What the store keeps with the session: the policy's state, naming the policy, and the calibration.

        Canonical JSON; ``state`` and ``calibration`` default to the current ones.
        """
        saved: dict[str, Any] = {"policy": self._policy.name, "state": self._policy.state() if state is None else state}
        calibration = self._calibration() if calibration is None else calibration
        if calibration:
            saved["tokenizer"] = calibration
        return json.dumps(saved, sort_keys=True, separators=(",", ":"))

    def _calibration(self) -> dict[str, Any] | None:
        """The calibration of an estimating tokenizer that has seen real counts, kept with the session."""
        tokenizer = self.tokenizer
        if type(tokenizer) is ApproxTokenizer and tokenizer.samples:
            return tokenizer.state()
        return None

    def _restore_state(self, text: str | None) -> None:
        """Load the policy state a store kept for this session (when it is this policy's) and the calibration."""
        if not text:
            return
        saved = json.loads(text)
        tokenizer = self.tokenizer
        if isinstance(saved.get("tokenizer"), dict) and type(tokenizer) is ApproxTokenizer:
            with contextlib.suppress(ValueError):  # a calibration not worth believing: start uncalibrated
                tokenizer.load_state(saved["tokenizer"])
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
        self._revision += 1
        self._policy.on_remove(dropped)

    def _stamp(self, batch: list[Message]) -> list[Message]:
        """The batch with ids and turn numbers, checked for tool pairing; changes nothing."""
        next_id = self._next_id
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
        if stamped:
            self._next_id = max(self._next_id, stamped[-1].id + 1)  # type: ignore[operator]
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
        policies use it, the sliding window ignores it. The policy state this context
        was built with (a summary that moved on, the layout's log) is kept at once: the
        caller is taken to send this context.
        """
        if query is not None and not isinstance(query, str):
            raise TypeError(f"query must be a str or None, not {type(query).__name__}")
        with self._lock:  # built and committed as one step: no other thread's draft in between
            context = self._build(query, ())
            draft = self._draft_of(context)
            if draft is not None:
                self._commit(draft)
        return context

    @locked
    def _build(
        self, query: str | None, pending: Sequence[Message], *, budget: int | None = None, continues: bool = False
    ) -> Context:
        """Build a context on a draft of the policy state, changing nothing.

        ``pending`` is a new turn not archived yet (``Chat`` uses it); ``continues``: it goes
        on the newest archived turn (tool results) instead of starting one. ``budget``
        replaces :attr:`budget` for this context (``Chat`` leaves room for tool schemas, or
        shrinks after a context-length error). The context carries the draft:
        ``extend(messages, context=ctx)`` commits it with the turn's messages, :meth:`context`
        at once; a context that is never sent (a failed turn) leaves the memory as it was.
        """
        counter = self._counter
        budget = self.budget if budget is None else min(self.budget, budget)
        room = budget - counter.base()
        if pending and continues and self._turns:
            last = self._turns[-1]
            newest: Turn | None = Turn(last.number, [*last.messages, *pending])
            older = TurnWindow(self._turns, len(self._turns) - 1)
        elif pending:
            newest = Turn(self._turns[-1].number + 1 if self._turns else 0, list(pending))
            older = TurnWindow(self._turns, len(self._turns))
        else:
            newest = self._turns[-1] if self._turns else None
            older = TurnWindow(self._turns, len(self._turns) - 1)

        pinned = ([Message("system", self.system)] if self.system else []) + self._pinned
        pinned, newest_msgs, truncated = fit_fixed(pinned, list(newest.messages) if newest else [], room, counter)
        fixed = sum(counter.message(m) for m in pinned) + sum(counter.message(m) for m in newest_msgs)
        view = PolicyInput(turns=older, budget=max(0, room - fixed), query=query, counter=counter, newest=newest)
        selection, elapsed_ms, fallback, state = select_on_draft(self._policy, view, self.max_policy_ms)

        chosen = [t for t in selection.turns if t is not newest and t.number != (newest.number if newest else None)]
        chosen = list({t.number: t for t in chosen}.values())
        if not selection.ordered:
            chosen.sort(key=lambda t: t.number)
        prefix = list(selection.prefix)
        planned = prefix + [m for t in chosen for m in t.messages] + newest_msgs
        fit = fit_budget(pinned, prefix, chosen, newest_msgs, budget, counter)
        messages, tokens, truncated = fit.messages, fit.tokens, truncated + fit.truncated
        stats = TurnStats(
            policy=self._policy.name,
            policy_ms=elapsed_ms,
            fallback=fallback,
            candidates=len(older),
            dropped=len(older) - fit.turns,
            summary_tokens=selection.summary_tokens if fit.prefix else 0,
            truncated=truncated,
        )
        included = [m.id for m in messages if m.id is not None]
        stable = fit.pinned + common_prefix(planned[: selection.stable or 0], messages[fit.pinned :])
        return Context(
            messages=messages,
            tokens=tokens,
            included=included,
            stats=stats,
            budget=budget,
            stable_prefix=stable,
            _draft=Draft(id(self), self._revision, state) if state is not None else None,
        )

    def _draft_of(self, context: Context | None) -> Draft | None:
        """The draft ``context`` carries, when it was built by this memory on its current state."""
        if context is None:
            return None
        if not isinstance(context, Context):
            raise TypeError(f"context must be a Context built by this memory, not {type(context).__name__}")
        draft = context._draft
        if not isinstance(draft, Draft) or draft.owner != id(self) or draft.revision != self._revision:
            return None
        return draft

    def _commit(self, draft: Draft) -> None:
        """Make a draft's policy state the memory's own."""
        self._policy.load_state(draft.state)
        self._revision += 1

    # -- checkpoints ------------------------------------------------------------------

    @locked
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint of the whole memory to ``path``, atomically.

        The file is versioned, checksummed JSON (no pickle); the previous file at
        ``path`` stays intact until the new one is completely on disk.
        """
        from ._checkpoint import save

        save(self, path)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        tokenizer: Tokenizer | None = None,
        policy: str | Policy | type[Policy] | None = None,
    ) -> Memory:
        """A memory restored from a checkpoint written by :meth:`save`.

        Raises :class:`~finite_memory.CheckpointError` saying what is wrong with a bad
        file, which is left untouched. ``tokenizer`` replaces the saved one (a checkpoint
        keeps only the calibration of an :class:`ApproxTokenizer`).

        ``policy`` is for a policy that is not registered by name (a class of your own):
        give its class, built with the saved options, or a fresh instance. The saved
        policy state is restored when the names match; another policy (or name) starts
        afresh on the restored archive, as when a store's session is opened with it.
        """
        from ._checkpoint import load

        return load(path, tokenizer=tokenizer, policy=policy)

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Close the store this memory opened from a URL; a store object passed in stays open (its owner closes it)."""
        if self._owns_store:
            with self._lock:
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


def check_policy_budget(max_policy_ms: object) -> None:
    """Raise ``ValueError`` unless ``max_policy_ms`` is None or a positive, finite number of milliseconds."""
    if max_policy_ms is not None and (
        not isinstance(max_policy_ms, (int, float))
        or isinstance(max_policy_ms, bool)
        or not 0 < max_policy_ms < math.inf
    ):
        raise ValueError(
            f"max_policy_ms must be a positive number (finite, in milliseconds) or None, got {max_policy_ms!r}"
        )
