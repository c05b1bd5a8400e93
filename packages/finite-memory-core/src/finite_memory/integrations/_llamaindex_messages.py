"""llama-index ``ChatMessage`` to and from :class:`~finite_memory.Message` (llama-index-core is imported)."""

from __future__ import annotations

import json
from typing import Any

from llama_index.core.base.llms.types import ChatMessage, TextBlock, ToolCallBlock

from .._message import Message

#: The ``meta`` key that keeps the whole original message, so it comes back as it went in.
LI_MESSAGE = "llamaindex"

_ROLES = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "chatbot": "assistant",
    "model": "assistant",
    "tool": "tool",
    "function": "tool",
}


def text_of(message: ChatMessage) -> str:
    """The message's text blocks, joined by newlines as ``ChatMessage.content`` does."""
    return "\n".join(block.text for block in message.blocks if isinstance(block, TextBlock))


def from_llamaindex(message: ChatMessage) -> Message:
    """A ``ChatMessage`` as a :class:`Message`; the original is kept in ``meta`` when it is JSON."""
    role = _ROLES.get(str(getattr(message.role, "value", message.role)))
    if role is None:
        raise ValueError(f"cannot archive a message with role {message.role!r}")
    kwargs = message.additional_kwargs or {}
    fields: dict[str, Any] = {"meta": _kept(message)}
    if role == "assistant":
        calls = [_block_call(b) for b in message.blocks if isinstance(b, ToolCallBlock)]
        calls += [_kwargs_call(c) for c in kwargs.get("tool_calls") or ()]
        unique = {call["id"]: call for call in calls}  # a call in a block and in additional_kwargs is one call
        fields["tool_calls"] = tuple(unique.values()) or None
    if role == "tool":
        call_id = kwargs.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise ValueError("a tool message needs additional_kwargs['tool_call_id'], the call it answers")
        fields["tool_call_id"] = call_id
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        fields["name"] = name
    return Message(role, text_of(message), **fields)  # type: ignore[arg-type]


def to_llamaindex(message: Message) -> ChatMessage:
    """The original ``ChatMessage`` when ``message`` holds it whole, else one rebuilt from its fields."""
    kept = message.meta.get(LI_MESSAGE)
    if kept is not None:
        original = ChatMessage.model_validate(kept)
        if text_of(original) == message.content:
            return original
    blocks: list[Any] = [TextBlock(text=message.content)] if message.content else []
    for call in message.tool_calls or ():
        name = call["function"]["name"]
        blocks.append(ToolCallBlock(tool_call_id=call["id"], tool_name=name, tool_kwargs=_args(call)))
    kwargs = {"tool_call_id": message.tool_call_id} if message.tool_call_id else {}
    return ChatMessage(role=message.role, blocks=blocks, additional_kwargs=kwargs)


def _kept(message: ChatMessage) -> dict[str, Any]:
    try:
        dumped = message.model_dump(mode="json")
        json.dumps(dumped)
    except (TypeError, ValueError):  # an additional_kwargs value that is not JSON: keep the fields only
        return {}
    return {LI_MESSAGE: dumped}


def _block_call(block: ToolCallBlock) -> dict[str, Any]:
    arguments = block.tool_kwargs if isinstance(block.tool_kwargs, str) else json.dumps(block.tool_kwargs)
    call_id = block.tool_call_id or f"{block.tool_name}-call"
    return {"id": call_id, "type": "function", "function": {"name": block.tool_name, "arguments": arguments}}


def _kwargs_call(call: Any) -> dict[str, Any]:
    """An OpenAI-style call kept in ``additional_kwargs["tool_calls"]``, as a dict or an SDK object."""
    if not isinstance(call, dict):
        call = call.model_dump() if hasattr(call, "model_dump") else vars(call)
    function = call.get("function") or {}
    arguments = function.get("arguments") or "{}"
    return {"id": call["id"], "type": "function", "function": {"name": function["name"], "arguments": arguments}}


def _args(call: dict[str, Any]) -> dict[str, Any] | str:
    raw = call["function"].get("arguments") or "{}"
    try:
        value = json.loads(raw)
    except ValueError:
        return str(raw)
    return value if isinstance(value, dict) else str(raw)
