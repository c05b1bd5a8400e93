"""LangChain messages to and from :class:`~finite_memory.Message` (the caller has imported langchain-core)."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage

from .._message import Message

#: The ``meta`` key that keeps a LangChain message's ``id``.
LC_ID = "langchain_id"

_ROLES = {"human": "user", "user": "user", "ai": "assistant", "assistant": "assistant", "system": "system"}


def text_of(message: BaseMessage) -> str:
    """The text of a message: its string content, or its text blocks joined."""
    content = message.content
    if isinstance(content, str):
        return content
    parts = []
    for block in content:
        if isinstance(block, str):
            parts.append(block)
        elif isinstance(block, dict) and block.get("type") == "text":
            parts.append(str(block.get("text", "")))
    return "".join(parts)


def from_langchain(message: BaseMessage) -> Message:
    """A LangChain message as a :class:`Message`; its ``id`` goes to ``meta["langchain_id"]``."""
    meta = {LC_ID: message.id} if isinstance(message.id, str) and message.id else {}
    name = message.name if isinstance(message.name, str) and message.name else None
    text = text_of(message)
    if isinstance(message, AIMessage):
        calls = [_openai_call(call, index, message.id) for index, call in enumerate(message.tool_calls)]
        return Message("assistant", text, name=name, tool_calls=tuple(calls) or None, meta=meta)
    if isinstance(message, ToolMessage):
        return Message("tool", text, name=name, tool_call_id=message.tool_call_id, meta=meta)
    if isinstance(message, HumanMessage):
        return Message("user", text, name=name, meta=meta)
    if isinstance(message, SystemMessage):
        return Message("system", text, name=name, meta=meta)
    if isinstance(message, ChatMessage) and message.role in _ROLES:
        return Message(_ROLES[message.role], text, name=name, meta=meta)  # type: ignore[arg-type]
    raise TypeError(f"cannot archive a {type(message).__name__} (role {getattr(message, 'type', '?')!r})")


def to_langchain(message: Message) -> BaseMessage:
    """A :class:`Message` as the LangChain message it came from (same ``id``, role and tool calls)."""
    fields: dict[str, Any] = {}
    if message.meta.get(LC_ID):
        fields["id"] = message.meta[LC_ID]
    if message.name:
        fields["name"] = message.name
    if message.role == "assistant":
        calls = [_langchain_call(call) for call in message.tool_calls or ()]
        return AIMessage(content=message.content, tool_calls=calls, **fields)
    if message.role == "tool":
        return ToolMessage(content=message.content, tool_call_id=message.tool_call_id, **fields)
    if message.role == "system":
        return SystemMessage(content=message.content, **fields)
    return HumanMessage(content=message.content, **fields)


def _openai_call(call: dict[str, Any], index: int, message_id: str | None) -> dict[str, Any]:
    arguments = json.dumps(call.get("args") or {}, ensure_ascii=False, sort_keys=True)
    call_id = call.get("id") or f"{message_id or 'call'}-{index}"
    return {"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": arguments}}


def _langchain_call(call: dict[str, Any]) -> dict[str, Any]:
    raw = call["function"].get("arguments") or "{}"
    try:
        args = json.loads(raw)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        args = {"arguments": raw}
    return {"name": call["function"]["name"], "args": args, "id": call["id"], "type": "tool_call"}
