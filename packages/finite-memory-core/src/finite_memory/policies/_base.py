"""The policy interface: a small object that picks older turns for one context."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar

from .._counting import TokenCounter
from .._errors import PolicyTimeout
from .._message import Message
from .._turns import Turn


@dataclass
class PolicyInput:
    """What a policy sees when it builds one context.

    ``turns`` are the older turns, oldest first; the newest turn (the one the model
    answers) and the pinned system messages are already placed by the memory, and
    ``budget`` is what is left for the policy. ``tokens(turn)`` is the cached cost of a
    turn. A long-running policy calls ``check_deadline()`` now and then.
    """

    turns: Sequence[Turn]
    budget: int
    query: str | None
    counter: TokenCounter
    newest: Turn | None = None
    deadline: float | None = None

    def __post_init__(self) -> None:
        self._key = self.counter.key  # the tokenizer does not change while a policy chooses

    def tokens(self, turn: Turn) -> int:
        return turn.tokens(self.counter, self._key)

    def check_deadline(self) -> None:
        """Raise :class:`PolicyTimeout` when the policy's latency budget is spent."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise PolicyTimeout("policy ran past max_policy_ms")


@dataclass
class Selection:
    """A policy's answer: older turns to keep and extra messages.

    ``prefix`` messages (a running summary, say) go right after the system messages;
    their cost must be inside the policy's budget. ``turns`` go in conversation order
    unless ``ordered`` is true, when they go in the order given (the layout engine's).
    ``stable`` is how many leading messages of ``prefix``, ``turns`` and the newest turn
    are expected to stay unchanged next turn (``None``: none of them).
    """

    turns: list[Turn]
    prefix: list[Message] = field(default_factory=list)
    summary_tokens: int = 0
    ordered: bool = False
    stable: int | None = None


class Policy:
    """Base class of memory policies.

    A policy is a dataclass whose fields are its documented options, with one job:
    :meth:`select`. Policies that keep an index of the archive (retrieval, summaries)
    also implement the ``on_add`` / ``on_remove`` hooks, which the memory calls once
    per archived message, so no policy ever rescans the history.
    """

    name: ClassVar[str] = "policy"

    def select(self, view: PolicyInput) -> Selection:
        """Choose which older turns go into this context."""
        raise NotImplementedError

    def on_add(self, turn: Turn, message: Message) -> None:
        """A message was archived into ``turn`` (called once per message)."""

    def on_remove(self, turns: Sequence[Turn]) -> None:
        """Whole turns left the archive (deletion, retention)."""

    def options(self) -> dict[str, Any]:
        """The policy's options, as given to its constructor."""
        instance: Any = self
        if not is_dataclass(instance):
            return {}
        return {f.name: getattr(self, f.name) for f in fields(instance) if f.init}

    def state(self) -> dict[str, Any]:
        """JSON-ready state that cannot be rebuilt from the archive (a summary, say)."""
        return {}

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
