"""The immutable chat message and its validation: the one gate into the archive."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ._values import EMPTY, FrozenDict, check_text, frozen

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
_FIELDS = frozenset(("role", "content", "name", "tool_calls", "tool_call_id", "meta", "id", "turn"))


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    ``tool_calls`` follows the OpenAI form (``{"id", "type": "function", "function":
    {"name", "arguments"}}``, ``arguments`` being a JSON object as text; missing or empty
    arguments become ``"{}"``); a ``tool`` message answers one of them through
    ``tool_call_id``. ``meta`` is free JSON data (a session date, a source).
    ``id`` and ``turn`` are given by the memory when the message is archived.

    Building a message checks everything it holds, so that whatever is archived can be
    saved, stored and sent: text is valid Unicode (no lone surrogate), ``meta`` is JSON (finite
    numbers, ``str`` keys, integers within 64 bits). ``meta`` and ``tool_calls`` are
    copied into read-only containers: changing the dict given to the constructor, or
    the message's own ``meta``, cannot change an archived message. Bad data raises
    ``TypeError`` or ``ValueError`` saying which field is wrong.
    """

    role: Role
    content: str
    name: str | None = field(default=None, kw_only=True)
    tool_calls: tuple[dict[str, Any], ...] | None = field(default=None, kw_only=True)
    tool_call_id: str | None = field(default=None, kw_only=True)
    meta: dict[str, Any] = field(default=EMPTY, kw_only=True)
    id: int | None = field(default=None, kw_only=True)
    turn: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; allowed roles: {', '.join(ROLES)}")
        content = check_text(self.content, "message content")
        if content is not self.content:
            object.__setattr__(self, "content", content)
        if self.name is not None:
            object.__setattr__(self, "name", check_text(self.name, "message name"))
        if self.tool_calls is not None:
            object.__setattr__(self, "tool_calls", _checked_tool_calls(self.role, self.tool_calls))
        if self.role == "tool":
            if not isinstance(self.tool_call_id, str) or not self.tool_call_id:
                raise ValueError("a tool message needs tool_call_id, the id of the call it answers")
            object.__setattr__(self, "tool_call_id", check_text(self.tool_call_id, "tool_call_id"))
        elif self.tool_call_id is not None:
            raise ValueError("only a tool message may carry tool_call_id")
        meta = self.meta
        if type(meta) is not FrozenDict:
            if not isinstance(meta, dict):
                raise TypeError(f"message meta must be a dict, not {type(meta).__name__}")
            object.__setattr__(self, "meta", frozen(meta, "message meta") if meta else EMPTY)

    @property
    def tool_call_ids(self) -> tuple[str, ...]:
        """The ids of the tool calls this message makes (empty when it makes none)."""
        return tuple(call["id"] for call in self.tool_calls or ())

    def with_content(self, content: str) -> Message:
        """A copy with other content (used to truncate a message for one context)."""
        return replace(self, content=content)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; fields left at their defaults are omitted.

        Its ``meta`` and the ``function`` of each tool call are the message's own read-only
        ones: copy them (``dict(...)``) to build a changed message.
        """
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            data["name"] = self.name
        if self.tool_calls is not None:
            data["tool_calls"] = [dict(call) for call in self.tool_calls]
        if self.tool_call_id is not None:
            data["tool_call_id"] = self.tool_call_id
        if self.meta:
            data["meta"] = self.meta
        if self.id is not None:
            data["id"] = self.id
        if self.turn is not None:
            data["turn"] = self.turn
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Message:
        """The inverse of :meth:`to_dict`; raises ``ValueError``/``TypeError`` on bad data."""
        if not isinstance(data, dict):
            raise TypeError(f"a message must be a dict, not {type(data).__name__}")
        if not data.keys() <= _FIELDS:
            raise ValueError(f"unknown message fields: {', '.join(sorted(set(data) - _FIELDS))}")
        for key in ("id", "turn"):
            value = data.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise TypeError(f"message {key} must be an int, not {type(value).__name__}")
        return cls(
            data.get("role"),  # type: ignore[arg-type]
            data.get("content"),  # type: ignore[arg-type]
            name=data.get("name"),
            tool_calls=data.get("tool_calls"),
            tool_call_id=data.get("tool_call_id"),
            meta=data.get("meta", {}),
            id=data.get("id"),
            turn=data.get("turn"),
        )


def _checked_tool_calls(role: str, calls: Any) -> tuple[dict[str, Any], ...] | None:
    """``calls`` in the OpenAI form, checked and frozen; a tuple already frozen here is taken as it is."""
    if role != "assistant":
        raise ValueError("only an assistant message may carry tool_calls")
    if type(calls) is tuple and all(type(call) is FrozenDict for call in calls):
        return calls or None
    if isinstance(calls, (str, bytes, dict)) or not hasattr(calls, "__iter__"):
        raise TypeError("tool_calls must be a list of dicts")
    checked = []
    seen: set[str] = set()
    for call in calls:
        if not isinstance(call, dict):
            raise TypeError("each tool call must be a dict")
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise ValueError("each tool call needs a non-empty string 'id'")
        call_id = check_text(call_id, "a tool call id")
        if call_id in seen:
            raise ValueError(f"tool call id {call_id!r} is used twice in one message; each call needs its own id")
        seen.add(call_id)
        if call.get("type", "function") != "function":
            raise ValueError(f"tool call {call_id!r} has type {call.get('type')!r}; only 'function' calls exist")
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise ValueError("each tool call needs 'function': {'name': str, 'arguments': str}")
        name = check_text(function["name"], f"the function name of tool call {call_id!r}")
        arguments = _checked_arguments(function.get("arguments"), call_id)
        checked.append(FrozenDict(id=call_id, type="function", function=FrozenDict(name=name, arguments=arguments)))
    return tuple(checked) or None


def _checked_arguments(arguments: Any, call_id: str) -> str:
    """A tool call's ``arguments``: JSON text of an object (what OpenAI sends and Anthropic's ``input`` must be)."""
    if arguments is None or arguments == "":
        return "{}"
    what = f"the arguments of tool call {call_id!r}"
    if not isinstance(arguments, str):
        raise TypeError(f"{what} must be JSON text (str), not {type(arguments).__name__}; use json.dumps")
    text = check_text(arguments, what)
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise ValueError(f"{what} are not JSON text ({exc}): {text[:80]!r}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{what} are not a JSON object: {text[:80]!r}")
    frozen(value, what)  # what they decode to is sent too (Anthropic's ``input``): the same rules as meta
    return text


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")
