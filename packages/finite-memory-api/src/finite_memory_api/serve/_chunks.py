"""Replies in OpenAI's wire form: a whole ``chat.completion``, or ``chat.completion.chunk`` server-sent events."""

from __future__ import annotations

import json
import time
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


class SSEEncoder:
    """A reply as ``chat.completion.chunk`` server-sent events: the role, text deltas, then the end.

    The end (:meth:`finish`) is the tool calls, the finish reason with the turn's
    ``figures`` as its ``finite_memory`` field, a usage chunk when the client asked for
    one, and ``[DONE]``.
    """

    def __init__(self, rid: str, model: str, include_usage: bool) -> None:
        created = int(time.time())
        self._head = (
            f'data: {{"id":"{rid}","object":"chat.completion.chunk","created":{created},'
            f'"model":{_dumps(model)},"choices":'
        )
        self._include_usage = include_usage

    def _event(self, choices: str, tail: str = "") -> str:
        return f"{self._head}{choices}{tail}}}\n\n"

    def start(self) -> bytes:
        return self._event('[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]').encode()

    def piece(self, text: str) -> bytes:
        return self._event(f'[{{"index":0,"delta":{{"content":{_dumps(text)}}},"finish_reason":null}}]').encode()

    def finish(self, completion: Completion, figures: dict[str, Any]) -> bytes:
        events = []
        calls = _tool_calls(completion)
        if calls:
            deltas = [{"index": i, **call} for i, call in enumerate(calls)]
            events.append(
                self._event(f'[{{"index":0,"delta":{{"tool_calls":{_dumps(deltas)}}},"finish_reason":null}}]')
            )
        finish = _dumps(completion.finish_reason or "stop")
        events.append(
            self._event(f'[{{"index":0,"delta":{{}},"finish_reason":{finish}}}]', f',"finite_memory":{_dumps(figures)}')
        )
        usage = usage_body(completion)
        if self._include_usage and usage is not None:
            events.append(self._event("[]", f',"usage":{_dumps(usage)}'))
        events.append("data: [DONE]\n\n")
        return "".join(events).encode()


def sse_error(error: ProxyError) -> bytes:
    """An error event, as OpenAI sends one inside a stream (the SDKs raise it)."""
    return f"data: {_dumps(error.body())}\n\n".encode()
