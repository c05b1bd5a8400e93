"""The ``openai`` backend: any server that speaks OpenAI's ``/v1/chat/completions``.

OpenAI itself, vLLM, the llama.cpp server, Ollama, LM Studio... ``base_url`` is the API
root including ``/v1`` (``http://localhost:8000/v1``), as in OpenAI's own SDK.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from finite_memory import BackendError, Completion, Message

from ._http import HTTPBackend, StreamAssembler, env_or, usage_stats
from ._retry import Retry
from ._sse import Event
from ._tokenize import ServerTokenizer

__all__ = ["OpenAIBackend"]


class OpenAIBackend(HTTPBackend):
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the model name the server knows (``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B"``).
        base_url: the API root, ``/v1`` included; defaults to ``$OPENAI_BASE_URL``, then
            ``https://api.openai.com/v1``.
        api_key: sent as a bearer token; defaults to ``$OPENAI_API_KEY``. Local servers
            usually need none. It never appears in an error, a log line or a ``repr``.
        timeout: seconds to wait for the server (per read, not for the whole reply).
        connect_timeout: seconds to wait for a connection.
        max_retries: retries on connect errors, timeouts, 429 and 5xx (see :class:`Retry`).
        retry: a :class:`Retry` for full control of the backoff (overrides ``max_retries``).
        headers: extra headers sent with every request (``OpenAI-Organization``...).
        stream_usage: ask for token usage at the end of a stream
            (``stream_options.include_usage``); turn it off for a server that rejects it.
        tokenize: ``"vllm"`` or ``"llama.cpp"`` to count tokens exactly with the
            server's ``/tokenize`` endpoint; by default the memory estimates counts and
            calibrates the estimate from the usage each reply reports.
        transport, async_transport: httpx transports (a proxy, a mounted app, a test
            double); by default httpx's pooled HTTP transport.

    Options of a call other than ``max_new_tokens`` and ``temperature`` (``tools``,
    ``tool_choice``, ``stop``, ``seed``, ``response_format``...) go into the request as
    they are.
    """

    scheme = "openai"
    _path = "/chat/completions"

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        stream_usage: bool = True,
        tokenize: Literal["vllm", "llama.cpp"] | None = None,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(
            model,
            base_url=env_or(base_url, "OPENAI_BASE_URL", "https://api.openai.com/v1"),  # type: ignore[arg-type]
            api_key=env_or(api_key, "OPENAI_API_KEY"),
            timeout=timeout,
            connect_timeout=connect_timeout,
            max_retries=max_retries,
            retry=retry,
            headers=headers,
            transport=transport,
            async_transport=async_transport,
        )
        self.stream_usage = bool(stream_usage)
        if tokenize is not None:
            root = self.base_url.removesuffix("/v1")
            self.tokenizer = ServerTokenizer(self, f"{root}/tokenize", tokenize)

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._key.reveal()}"} if self._key is not None else {}

    def _body(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        return {"model": self.model, "messages": [to_openai(m) for m in messages], **options}

    def _payload(self, messages: Sequence[Message], options: dict[str, Any], stream: bool) -> bytes:
        if stream and self.stream_usage:
            options.setdefault("stream_options", {"include_usage": True})
        return super()._payload(messages, options, stream)

    def _parse(self, data: Any) -> Completion:
        if "error" in data:  # some servers answer an error with status 200
            error = data["error"]
            raise ValueError(f"the server sent an error: {error.get('message') if isinstance(error, dict) else error}")
        choice = data["choices"][0]
        message = choice["message"]
        calls = message.get("tool_calls") or None
        finish = choice.get("finish_reason")
        if finish is None:
            raise ValueError("the reply has no finish_reason")
        return _completion(message.get("content") or "", calls, finish, data.get("usage"))

    def _assembler(self) -> StreamAssembler:
        return _OpenAIStream()


def to_openai(message: Message) -> dict[str, Any]:
    """A :class:`Message` in the chat-completions request form."""
    data: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name is not None:
        data["name"] = message.name
    if message.tool_calls:
        data["tool_calls"] = [dict(call) for call in message.tool_calls]
        if not message.content:
            data["content"] = None
    if message.tool_call_id is not None:
        data["tool_call_id"] = message.tool_call_id
    return data


def _completion(text: str, calls: Any, finish: str, usage: Any) -> Completion:
    tool_calls = tuple(_tool_call(c) for c in calls) if calls else None
    usage = usage or {}
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    if "prompt_tokens" in usage:
        report, stats = usage_stats(int(usage["prompt_tokens"]), int(usage.get("completion_tokens") or 0), int(cached))
    else:
        report, stats = {}, {}
    return Completion(text=text, tool_calls=tool_calls, finish_reason=finish, usage=report, stats=stats)


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    function = call["function"]
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": function["name"], "arguments": function.get("arguments") or ""},
    }


class _OpenAIStream(StreamAssembler):
    """Assembles ``chat.completion.chunk`` events: text deltas, tool-call deltas, usage."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.done = False

    def feed(self, event: Event) -> str:
        if self.done:
            return ""
        if event.data == "[DONE]":
            self.done = True
            return ""
        chunk = json.loads(event.data)
        if not isinstance(chunk, dict):
            raise ValueError(f"a chunk must be a JSON object, got {event.data[:80]!r}")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message") if isinstance(error, dict) else str(error)
            raise BackendError(f"the server sent an error mid-stream: {message}")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        piece = ""
        for choice in chunk.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            if delta.get("content"):
                piece += delta["content"]
            for call in delta.get("tool_calls") or ():
                self._add_call(call)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        if piece:
            self.text.append(piece)
        return piece

    def _add_call(self, delta: dict[str, Any]) -> None:
        slot = self.calls.setdefault(int(delta.get("index", len(self.calls))), {"id": "", "name": "", "arguments": ""})
        if delta.get("id"):
            slot["id"] = delta["id"]
        function = delta.get("function") or {}
        if function.get("name"):
            slot["name"] += function["name"]
        if function.get("arguments"):
            slot["arguments"] += function["arguments"]

    def finish(self, stats: dict[str, Any]) -> Completion:
        if not self.done:
            raise BackendError("the stream ended before its [DONE] terminator; the reply is incomplete")
        if self.finish_reason is None:
            raise BackendError("the stream ended without a finish_reason; the reply is incomplete")
        for c in self.calls.values():
            if not c["id"] or not c["name"]:
                raise BackendError("the stream sent a tool call without an id or a name")
        calls = [
            {"id": c["id"], "function": {"name": c["name"], "arguments": c["arguments"]}}
            for _, c in sorted(self.calls.items())
        ]
        completion = _completion("".join(self.text), calls, self.finish_reason, self.usage)
        completion.stats.update(stats)
        return completion
