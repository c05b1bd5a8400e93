"""Helpers of ``Memory.forget`` and of the memory's lock, kept out of ``_memory.py``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._turns import Turn

F = TypeVar("F", bound=Callable[..., Any])


def locked(method: F) -> F:
    """Run ``method`` holding ``self._lock`` (a re-entrant lock), so calls from threads never interleave."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def int_list(values: Iterable[int], name: str) -> list[int]:
    """``values`` as a list of ints; ``TypeError`` naming ``name`` for anything else (a str, a bool)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise TypeError(f"{name} must be an iterable of ints, not {type(values).__name__}")
    found = list(values)
    for value in found:
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} must hold ints, got {value!r}")
    return found


def with_tool_partners(turn: Turn, erase: set[int]) -> None:
    """Add to ``erase`` the tool calls and results of ``turn`` that go with an erased one.

    A result goes with its call, and a call with all its results: the model cannot be sent
    a call without its result, nor a result without its call.
    """
    changed = True
    while changed:
        changed = False
        gone = [m for m in turn.messages if m.id in erase]
        calls = {call for m in gone for call in m.tool_call_ids}
        answered = {m.tool_call_id for m in gone if m.role == "tool"}
        for message in turn.messages:
            if message.id is None or message.id in erase:
                continue
            if (message.role == "tool" and message.tool_call_id in calls) or answered.intersection(
                message.tool_call_ids
            ):
                erase.add(message.id)
                changed = True
