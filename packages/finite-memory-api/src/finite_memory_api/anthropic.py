"""The ``anthropic`` backend: Anthropic's ``/v1/messages`` API.

A :class:`~finite_memory.Message` list maps onto it as follows: system messages become
the top-level ``system`` prompt; an assistant message's OpenAI-style ``tool_calls``
become ``tool_use`` blocks; a ``tool`` message becomes a ``tool_result`` block in a user
turn; consecutive messages of one role merge into one turn, as the API requires. Replies
map back the same way, so tool calls round-trip through ``Message.tool_calls``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from finite_memory import BackendError, Completion, Message

from ._http import HTTPBackend, StreamAssembler, env_or, usage_stats
from ._retry import Retry
from ._sse import Event

__all__ = ["AnthropicBackend"]

API_VERSION = "2023-06-01"


class AnthropicBackend(HTTPBackend):
    """A Claude model behind Anthropic's Messages API.

    Args:
        model: the model name (``"claude-3-5-haiku-latest"``...).
        base_url: the API root without ``/v1``; defaults to ``$ANTHROPIC_BASE_URL``, then
            ``https://api.anthropic.com``.
        api_key: sent as ``x-api-key``; defaults to ``$ANTHROPIC_API_KEY``. It never
            appears in an error, a log line or a ``repr``.
        max_tokens: the reply length when a call gives no ``max_new_tokens`` (the API
            requires one).
        timeout, connect_timeout, max_retries, retry, headers, transport,
        async_transport: as for :class:`~finite_memory_api.OpenAIBackend`.

    Call options other than ``max_new_tokens`` and ``temperature`` go into the request;
    ``tools`` and ``tool_choice`` may be given in OpenAI's form and are converted.
    """

    scheme = "anthropic"
    _path = "/v1/messages"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        max_tokens: int = 1024,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        super().__init__(
            model,
            base_url=env_or(base_url, "ANTHROPIC_BASE_URL", "https://api.anthropic.com"),  # type: ignore[arg-type]
            api_key=env_or(api_key, "ANTHROPIC_API_KEY"),
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            retry=retry,
            headers=headers,
            transport=transport,
            async_transport=async_transport,
        )
        self.max_tokens = max_tokens

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self._key is not None:
            headers["x-api-key"] = self._key.reveal()
        return headers

    def _body(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        system, turns = to_anthropic(messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": turns}
        if system:
            body["system"] = system
        if "tools" in options:
            options["tools"] = [_tool(t) for t in options["tools"]]
        if "tool_choice" in options:
            options["tool_choice"] = _tool_choice(options["tool_choice"])
        body.update(options)
        return body

    def _parse(self, data: Any) -> Completion:
        if data.get("type") == "error":
            error = data.get("error") or {}
            raise ValueError(f"the server sent an error: {error.get('message')} ({error.get('type')})")
        text, calls = [], []
        for block in data["content"]:
            if block["type"] == "text":
                text.append(block["text"])
            elif block["type"] == "tool_use":
                calls.append(_call(block["id"], block["name"], json.dumps(block["input"], ensure_ascii=False)))
        finish = data.get("stop_reason")
        if finish is None:
            raise ValueError("the reply has no stop_reason")
        return _completion("".join(text), calls, finish, data.get("usage") or {})

    def _assembler(self) -> StreamAssembler:
        return _AnthropicStream()


def to_anthropic(messages: Sequence[Message]) -> tuple[str, list[dict[str, Any]]]:
    """``messages`` as the Messages API wants them: the system prompt, and the turns."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    turns: list[dict[str, Any]] = []
    for m in messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        blocks: list[dict[str, Any]] = []
        if m.role == "tool":
            blocks.append({"type": "tool_result", "tool_use_id": m.tool_call_id, "content": m.content})
        elif m.content or not m.tool_calls:
            blocks.append({"type": "text", "text": m.content})
        for call in m.tool_calls or ():
            function = call["function"]
            blocks.append({"type": "tool_use", "id": call["id"], "name": function["name"], "input": _arguments(call)})
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _arguments(call: dict[str, Any]) -> Any:
    raw = call["function"].get("arguments") or "{}"
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError(f"tool call {call['id']!r} has arguments that are not a JSON object: {str(raw)[:80]!r}")
    return value


def _tool(tool: Any) -> Any:
    """An OpenAI-form tool definition as an Anthropic one (others pass unchanged)."""
    if isinstance(tool, dict) and tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        function = tool["function"]
        converted = {"name": function["name"], "input_schema": function.get("parameters") or {"type": "object"}}
        if function.get("description"):
            converted["description"] = function["description"]
        return converted
    return tool


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "tool", "name": choice["function"]["name"]}
    return choice


def _call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _completion(text: str, calls: list[dict[str, Any]], finish: str, usage: dict[str, Any]) -> Completion:
    cached = int(usage.get("cache_read_input_tokens") or 0)
    prompt = int(usage.get("input_tokens") or 0) + int(usage.get("cache_creation_input_tokens") or 0) + cached
    report, stats = usage_stats(prompt, int(usage.get("output_tokens") or 0), cached) if usage else ({}, {})
    return Completion(text=text, tool_calls=tuple(calls) or None, finish_reason=finish, usage=report, stats=stats)


class _AnthropicStream(StreamAssembler):
    """Assembles Messages API stream events: text and ``input_json`` deltas, usage."""

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None
        self.done = False

    def feed(self, event: Event) -> str:
        if self.done:
            return ""
        data = json.loads(event.data)
        if not isinstance(data, dict):
            raise ValueError(f"an event must be a JSON object, got {event.data[:80]!r}")
        kind = data.get("type", event.event)
        if kind == "content_block_delta":
            delta = data["delta"]
            block = self.blocks[int(data["index"])]
            if delta["type"] == "text_delta":
                block["text"].append(delta["text"])
                return str(delta["text"])
            if delta["type"] == "input_json_delta":
                block["json"].append(delta["partial_json"])
        elif kind == "content_block_start":
            block = dict(data["content_block"])
            block["text"] = [block.get("text") or ""]
            block["json"] = []
            self.blocks[int(data["index"])] = block
        elif kind == "message_start":
            self.usage.update(data["message"].get("usage") or {})
        elif kind == "message_delta":
            self.stop_reason = data["delta"].get("stop_reason") or self.stop_reason
            self.usage.update(data.get("usage") or {})
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            error = data.get("error") or {}
            raise BackendError(f"the server sent an error mid-stream: {error.get('type')}: {error.get('message')}")
        return ""

    def finish(self, stats: dict[str, Any]) -> Completion:
        if not self.done:
            raise BackendError("the stream ended before message_stop; the reply is incomplete")
        if self.stop_reason is None:
            raise BackendError("the stream ended without a stop_reason; the reply is incomplete")
        text, calls = [], []
        for _, block in sorted(self.blocks.items()):
            if block["type"] == "text":
                text.append("".join(block["text"]))
            elif block["type"] == "tool_use":
                raw = "".join(block["json"]) or "{}"
                try:
                    json.loads(raw)
                except ValueError:
                    raise BackendError(f"the stream sent broken tool-call arguments: {raw[:80]!r}") from None
                calls.append(_call(block["id"], block["name"], raw))
        completion = _completion("".join(text), calls, self.stop_reason, self.usage)
        completion.stats.update(stats)
        return completion
