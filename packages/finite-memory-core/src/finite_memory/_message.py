"""The immutable chat message and its validation."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message.

    ``tool_calls`` follows the OpenAI form (``{"id", "type": "function", "function":
    {"name", "arguments"}}``); a ``tool`` message answers one of them through
    ``tool_call_id``. ``meta`` is free JSON-serialisable data (a session date, a source).
    ``id`` and ``turn`` are given by the memory when the message is archived.
    """

    role: Role
    content: str
    name: str | None = field(default=None, kw_only=True)
    tool_calls: tuple[dict[str, Any], ...] | None = field(default=None, kw_only=True)
    tool_call_id: str | None = field(default=None, kw_only=True)
    meta: dict[str, Any] = field(default_factory=dict, kw_only=True)
    id: int | None = field(default=None, kw_only=True)
    turn: int | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; allowed roles: {', '.join(ROLES)}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be str, not {type(self.content).__name__}")
        if self.name is not None and not isinstance(self.name, str):
            raise TypeError(f"message name must be str or None, not {type(self.name).__name__}")
        if self.tool_calls is not None:
            object.__setattr__(self, "tool_calls", _checked_tool_calls(self.role, self.tool_calls))
        if self.role == "tool":
            if not isinstance(self.tool_call_id, str) or not self.tool_call_id:
                raise ValueError("a tool message needs tool_call_id, the id of the call it answers")
        elif self.tool_call_id is not None:
            raise ValueError("only a tool message may carry tool_call_id")
        if not isinstance(self.meta, dict):
            raise TypeError(f"message meta must be a dict, not {type(self.meta).__name__}")
        if self.meta:
            try:
                json.dumps(self.meta)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"message meta must be JSON-serialisable: {exc}") from None

    @property
    def tool_call_ids(self) -> tuple[str, ...]:
        """The ids of the tool calls this message makes (empty when it makes none)."""
        return tuple(call["id"] for call in self.tool_calls or ())

    def with_content(self, content: str) -> Message:
        """A copy with other content (used to truncate a message for one context)."""
        return replace(self, content=content)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; fields left at their defaults are omitted."""
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
        unknown = set(data) - {"role", "content", "name", "tool_calls", "tool_call_id", "meta", "id", "turn"}
        if unknown:
            raise ValueError(f"unknown message fields: {', '.join(sorted(unknown))}")
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
    if role != "assistant":
        raise ValueError("only an assistant message may carry tool_calls")
    if isinstance(calls, (str, bytes, dict)) or not hasattr(calls, "__iter__"):
        raise TypeError("tool_calls must be a list of dicts")
    checked = []
    for call in calls:
        if not isinstance(call, dict):
            raise TypeError("each tool call must be a dict")
        function = call.get("function")
        if not isinstance(call.get("id"), str) or not call["id"]:
            raise ValueError("each tool call needs a non-empty string 'id'")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise ValueError("each tool call needs 'function': {'name': str, 'arguments': str}")
        checked.append({"id": call["id"], "type": call.get("type", "function"), "function": dict(function)})
    return tuple(checked) or None
