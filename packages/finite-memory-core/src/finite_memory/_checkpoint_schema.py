"""What a checkpoint may hold: every field :mod:`._checkpoint` reads, its type and its range.

A file with a valid checksum may still be crafted: these checks refuse it at load, with a
:class:`~finite_memory.CheckpointError` naming the field, rather than let a value break
(or overrun the budget of) a later turn.
"""

from __future__ import annotations

import sys
from typing import Any

from ._errors import CheckpointError
from ._message import Message
from ._values import frozen

TOP_FIELDS = {"checksum", "format", "version", "memory"}
MEMORY_FIELDS: dict[str, tuple[type, ...]] = {
    "session": (str,),
    "system": (str, type(None)),
    "max_tokens": (int,),
    "reserve_output": (int,),
    "max_policy_ms": (int, float, type(None)),
    "policy": (dict,),
    "tokenizer": (dict,),
    "messages": (list,),
}
#: ``ApproxTokenizer.state()`` fields this module knows and their ranges (the scale as the tokenizer
#: clamps it); the tokenizer's ``load_state`` checks the fields it adds.
_CALIBRATION: dict[str, tuple[float, float]] = {
    "scale": (0.05, 20.0),
    "seen_tokens": (0.0, sys.float_info.max),
    "seen_raw": (0.0, sys.float_info.max),
}


def check_body(document: dict[str, Any], where: str) -> None:
    """Every field of a checked, migrated document: present, of its type, in range; nothing unknown."""
    _no_unknown(document, TOP_FIELDS, "", where)
    body = document.get("memory")
    if not isinstance(body, dict):
        raise CheckpointError(f"{where}: missing field 'memory'")
    _no_unknown(body, set(MEMORY_FIELDS), "memory.", where)
    for name, types in MEMORY_FIELDS.items():
        if name not in body:
            raise CheckpointError(f"{where}: missing field 'memory.{name}'")
        value = body[name]
        if not isinstance(value, types) or isinstance(value, bool):
            allowed = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            raise CheckpointError(f"{where}: memory.{name} must be {allowed}, not {type(value).__name__}")
    policy = body["policy"]
    _no_unknown(policy, {"name", "options", "state"}, "memory.policy.", where)
    if not isinstance(policy.get("name"), str) or not policy["name"]:
        raise CheckpointError(f"{where}: memory.policy.name must be a non-empty str")
    for name in ("options", "state"):
        if not isinstance(policy.get(name), dict):
            raise CheckpointError(f"{where}: memory.policy.{name} must be an object")
        try:  # the same rules as a message's meta: a summary in the state becomes a message
            frozen(policy[name], f"memory.policy.{name}")
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{where}: {exc}"[:300]) from None
    _check_tokenizer(body["tokenizer"], body["max_tokens"] - body["reserve_output"], where)


def _no_unknown(data: dict[str, Any], known: set[str], prefix: str, where: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        names = ", ".join(repr(f"{prefix}{name}") for name in unknown[:5])
        raise CheckpointError(f"{where}: unknown field {names} (edited by hand, or written by another program)"[:300])


def _check_tokenizer(spec: dict[str, Any], budget: int, where: str) -> None:
    """The saved calibration of an :class:`ApproxTokenizer`: ints and finite numbers in their ranges.

    The fixed costs must leave room for a message in the memory's own budget: a saved
    memory could never have built a context otherwise.
    """
    kind = spec.get("kind")
    if not isinstance(kind, str) or not kind:
        raise CheckpointError(f"{where}: memory.tokenizer.kind must be a non-empty str")
    if kind != "approx":
        _no_unknown(spec, {"kind"}, "memory.tokenizer.", where)
        return
    _no_unknown(spec, {"kind", "per_message", "per_prompt", "state"}, "memory.tokenizer.", where)
    for name in ("per_message", "per_prompt"):
        value = spec.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(
                f"{where}: bad tokenizer calibration: {name} must be an int >= 0, got {value!r}"[:300]
            )
    if 0 < budget <= spec["per_message"] + spec["per_prompt"]:  # (a budget <= 0 is refused as a memory setting)
        raise CheckpointError(
            f"{where}: bad tokenizer calibration: per_message + per_prompt ({spec['per_message']} + "
            f"{spec['per_prompt']}) leave no room in the context budget of {budget} tokens"[:300]
        )
    state = spec.get("state")
    if not isinstance(state, dict):
        raise CheckpointError(f"{where}: bad tokenizer calibration: memory.tokenizer.state must be an object")
    for name, (low, high) in _CALIBRATION.items():
        value = state.get(name)
        if name not in state and name != "scale":
            continue  # an older calibration may lack the counts
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not low <= value <= high:
            raise CheckpointError(
                f"{where}: bad tokenizer calibration: tokenizer.state.{name} must be a number from {low} to {high}, "
                f"got {value!r}"[:300]
            )
    try:  # what a newer tokenizer adds (its load_state checks its own fields): JSON every store keeps
        frozen(state, "tokenizer.state")
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: bad tokenizer calibration: {exc}"[:300]) from None


#: Ids and turn numbers fit a signed 64-bit SQL integer.
_ID_LIMIT = 2**63


def check_archive(messages: list[Message]) -> None:
    """Ids strictly increasing, turns never going back, tool results answering a call of their turn."""
    last_id = -1
    turn = -1
    calls: set[str] = set()
    for message in messages:
        if message.id is None or message.turn is None:
            raise ValueError("every archived message needs an id and a turn")
        if message.id >= _ID_LIMIT or message.turn >= _ID_LIMIT:
            raise ValueError(f"message id {message.id} / turn {message.turn} beyond 64 bits")
        if message.id <= last_id or message.turn < 0:
            raise ValueError(f"message id {message.id} / turn {message.turn} out of order")
        if message.turn < turn:
            raise ValueError(f"message {message.id} goes back to turn {message.turn}")
        if message.role != "system" and message.turn != turn:
            turn, calls = message.turn, set()
        if message.role == "tool" and message.tool_call_id not in calls:
            raise ValueError(f"tool message {message.id} answers no call of its turn")
        if message.tool_calls:
            calls.update(message.tool_call_ids)
        last_id = message.id
