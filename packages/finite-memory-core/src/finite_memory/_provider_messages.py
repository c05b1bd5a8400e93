"""Messages in the request shapes of the OpenAI and Anthropic SDKs, ready to pass straight to them.

Only what each API knows goes out: the archive's ``id``, ``turn`` and ``meta`` stay
behind (``Context.as_dicts()`` keeps them; that is the archive's form, not a request's).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._message import Message


def openai_message(message: Message) -> dict[str, Any]:
    """One message as a chat-completions request message.

    An assistant message that only calls tools has ``content`` ``None``, as the API
    returns it; a tool result carries ``tool_call_id`` and no ``name``.
    """
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None and message.role != "tool":
        data["name"] = message.name
    if message.tool_calls:
        data["tool_calls"] = [
            {"id": call["id"], "type": "function", "function": dict(call["function"])} for call in message.tool_calls
        ]
        if not message.content:
            data["content"] = None
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data


def to_openai(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """``messages`` for ``client.chat.completions.create(messages=...)``."""
    return [openai_message(m) for m in messages]


def to_anthropic(messages: Sequence[Message]) -> dict[str, Any]:
    """``{"system": ..., "messages": [...]}`` for ``client.messages.create(**...)``.

    System messages (the prompt, a running summary) are joined into ``system``, left
    out when there are none. Tool calls become ``tool_use`` blocks with their arguments
    parsed, tool results ``tool_result`` blocks in a user message; consecutive messages
    of one role are merged, since the API wants user and assistant to alternate. Empty
    text blocks, which the API refuses, are left out.
    """
    system, turns, _ = anthropic_parts(messages)
    request: dict[str, Any] = {"messages": turns}
    if system:
        request["system"] = system
    return request


def anthropic_parts(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]], list[dict[str, Any] | None]]:
    """What :func:`to_anthropic` builds, and for each message the last block it became.

    The blocks are where a backend places ``cache_control`` breakpoints; ``None`` for a
    message that became no block (a system message, an empty one).
    """
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    turns: list[dict[str, Any]] = []
    last_blocks: list[dict[str, Any] | None] = []
    for message in messages:
        blocks = [] if message.role == "system" else _anthropic_blocks(message)
        last_blocks.append(blocks[-1] if blocks else None)
        if not blocks:
            continue
        role = "assistant" if message.role == "assistant" else "user"
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns, last_blocks


def _anthropic_blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content}]
    blocks: list[dict[str, Any]] = []
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    for call in message.tool_calls or ():
        function = call["function"]
        arguments = json.loads(function["arguments"])  # Message admits only JSON-object text
        blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": arguments})
    return blocks
