"""Replies in OpenAI's wire form: a whole ``chat.completion``, or ``chat.completion.chunk`` server-sent events."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from finite_memory import Completion

from ._errors import ProxyError


def _dumps(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def usage_body(completion: Completion) -> dict[str, Any] | None:
    """The reply's ``usage`` in OpenAI's form (cached prompt tokens in ``prompt_tokens_details``), if reported."""
    usage = completion.usage
    if "prompt_tokens" not in usage:
        return None
    body: dict[str, Any] = {
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage.get("completion_tokens", 0),
        "total_tokens": usage.get("total_tokens", usage["prompt_tokens"] + usage.get("completion_tokens", 0)),
    }
    if "reused_tokens" in completion.stats:
        body["prompt_tokens_details"] = {"cached_tokens": completion.stats["reused_tokens"]}
    return body


def _tool_calls(completion: Completion) -> list[dict[str, Any]]:
    return [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]},
        }
        for c in completion.tool_calls or ()
    ]


def completion_body(rid: str, model: str, completion: Completion) -> dict[str, Any]:
    """A whole ``chat.completion`` object."""
    message: dict[str, Any] = {"role": "assistant", "content": completion.text or None}
    if completion.tool_calls:
        message["tool_calls"] = _tool_calls(completion)
    elif message["content"] is None:
        message["content"] = ""
    body: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": completion.finish_reason or "stop", "logprobs": None}
        ],
    }
    usage = usage_body(completion)
    if usage is not None:
        body["usage"] = usage
    return body


async def sse_chunks(
    rid: str,
    model: str,
    pieces: AsyncIterator[str | Completion],
    include_usage: bool,
    figures: Callable[[Completion], dict[str, Any]],
) -> AsyncIterator[bytes]:
    """The reply as ``chat.completion.chunk`` events: the role, text deltas, tool calls, the finish, ``[DONE]``.

    ``pieces`` are the reply's text pieces, then its :class:`Completion`. The finish
    chunk carries ``figures(completion)`` as its ``finite_memory`` field (what is known
    only once the turn is archived); a usage chunk follows when ``include_usage``.
    """
    created = int(time.time())
    head = (
        f'data: {{"id":"{rid}","object":"chat.completion.chunk","created":{created},"model":{_dumps(model)},"choices":'
    )

    def event(choices: str, tail: str = "") -> bytes:
        return f"{head}{choices}{tail}}}\n\n".encode()

    yield event('[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]')
    completion = None
    async for piece in pieces:
        if isinstance(piece, Completion):
            completion = piece
            break
        yield event(f'[{{"index":0,"delta":{{"content":{_dumps(piece)}}},"finish_reason":null}}]')
    if completion is None:
        return
    calls = _tool_calls(completion)
    if calls:
        deltas = [{"index": i, **call} for i, call in enumerate(calls)]
        yield event(f'[{{"index":0,"delta":{{"tool_calls":{_dumps(deltas)}}},"finish_reason":null}}]')
    finish = _dumps(completion.finish_reason or "stop")
    yield event(
        f'[{{"index":0,"delta":{{}},"finish_reason":{finish}}}]', f',"finite_memory":{_dumps(figures(completion))}'
    )
    usage = usage_body(completion)
    if include_usage and usage is not None:
        yield event("[]", f',"usage":{_dumps(usage)}')
    yield b"data: [DONE]\n\n"


def sse_error(error: ProxyError) -> bytes:
    """An error event, as OpenAI sends one inside a stream (the SDKs raise it)."""
    return f"data: {_dumps(error.body())}\n\n".encode()
