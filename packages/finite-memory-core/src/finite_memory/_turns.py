"""Turns: a user message with everything that answers it, with cached token counts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, overload

from ._message import Message

if TYPE_CHECKING:
    from ._counting import TokenCounter


class Turn:
    """A user message and what answers it (assistant replies, tool calls, tool results).

    The layout engine keeps or drops whole turns; retrieval may keep single messages of a
    turn without tool calls (one line is what a question needs), so a tool result never
    travels without its call.
    Turn 0 holds what comes before the first user message (a greeting, say). System
    messages are pinned by the memory and belong to no turn.
    """

    __slots__ = ("_costs", "_key", "_tokens", "messages", "number")

    def __init__(self, number: int, messages: list[Message] | None = None) -> None:
        self.number = number
        self.messages: list[Message] = messages if messages is not None else []
        self._costs: list[int] = []
        self._key: object = None
        self._tokens = 0

    def __repr__(self) -> str:
        return f"Turn(number={self.number}, messages={len(self.messages)})"

    @property
    def text(self) -> str:
        """The turn's contents joined by newlines (what retrieval indexes)."""
        return "\n".join(m.content for m in self.messages if m.content)

    @property
    def ids(self) -> list[int]:
        """The archive ids of the turn's messages."""
        return [m.id for m in self.messages if m.id is not None]

    def open_tool_calls(self) -> set[str]:
        """Ids of tool calls made in this turn (answered or not)."""
        return {call_id for m in self.messages for call_id in m.tool_call_ids}

    def tokens(self, counter: TokenCounter, key: object = None) -> int:
        """Tokens the whole turn adds to a prompt, cached until the tokenizer changes.

        ``key`` is ``counter.key`` where the caller already has it (a loop over many turns).
        """
        if key is None:
            key = counter.key
        if self._key != key:
            self._costs = [counter.message(m) for m in self.messages]
            self._tokens = sum(self._costs)
            self._key = key
        elif len(self._costs) < len(self.messages):
            for message in self.messages[len(self._costs) :]:
                cost = counter.message(message)
                self._costs.append(cost)
                self._tokens += cost
        return self._tokens


class TurnWindow(Sequence[Turn]):
    """A read-only view of the first ``stop`` turns of a list, without copying it."""

    __slots__ = ("_stop", "_turns")

    def __init__(self, turns: list[Turn], stop: int) -> None:
        self._turns = turns
        self._stop = max(0, min(stop, len(turns)))

    def __len__(self) -> int:
        return self._stop

    @overload
    def __getitem__(self, index: int) -> Turn: ...

    @overload
    def __getitem__(self, index: slice) -> list[Turn]: ...

    def __getitem__(self, index: int | slice) -> Turn | list[Turn]:
        if isinstance(index, slice):
            return [self._turns[i] for i in range(*index.indices(self._stop))]
        if index < 0:
            index += self._stop
        if not 0 <= index < self._stop:
            raise IndexError("turn index out of range")
        return self._turns[index]

    def __iter__(self) -> Iterator[Turn]:
        for i in range(self._stop):
            yield self._turns[i]

    def __reversed__(self) -> Iterator[Turn]:
        for i in range(self._stop - 1, -1, -1):
            yield self._turns[i]
