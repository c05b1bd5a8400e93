"""The ``anthropic`` backend: Anthropic's ``/v1/messages`` API.

A :class:`~finite_memory.Message` list maps onto it as follows: system messages become
the top-level ``system`` prompt; an assistant message's OpenAI-style ``tool_calls``
become ``tool_use`` blocks; a ``tool`` message becomes a ``tool_result`` block in a user
turn; consecutive messages of one role merge into one turn, as the API requires. Replies
map back the same way, so tool calls round-trip through ``Message.tool_calls``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from finite_memory import Completion, Message
from finite_memory._provider_messages import anthropic_parts

from ._http import HTTPBackend, ServerSaid, StreamAssembler, env_or
from ._limits import Limits
from ._parse import Incomplete, Malformed, arr, completion, index, kind, loads, obj, string, tokens, tool_call
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
        cache_control: place prompt-cache breakpoints (``cache_control``) at the end of
            the system prompt and at the end of the context's stable prefix, so a turn
            re-reads what the last one cached; ``False`` sends none.
        timeout, connect_timeout, max_retries, retry, headers, limits, transport,
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
        cache_control: bool = True,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_retries: int = 2,
        retry: Retry | None = None,
        headers: Mapping[str, str] | None = None,
        limits: Limits | None = None,
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
            limits=limits,
            transport=transport,
            async_transport=async_transport,
        )
        self.max_tokens = max_tokens
        self.cache_control = bool(cache_control)

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": API_VERSION}
        if self._key is not None:
            headers["x-api-key"] = self._key.reveal()
        return headers

    def _body(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        stable_prefix = options.pop("stable_prefix", None)
        options.pop("session", None)
        system, turns, last_blocks = anthropic_parts(messages)
        body: dict[str, Any] = {"model": self.model, "max_tokens": self.max_tokens, "messages": turns}
        if system:
            body["system"] = [{"type": "text", "text": system}] if self.cache_control else system
        if self.cache_control:
            _place_breakpoints(body, messages, last_blocks, stable_prefix)
        if "tools" in options:
            options["tools"] = [_tool(t) for t in arr(options["tools"], "tools")]
        if "tool_choice" in options:
            options["tool_choice"] = _tool_choice(options["tool_choice"])
        body.update(options)
        return body

    def _parse(self, data: Any) -> Completion:
        return parse_reply(data)

    def _assembler(self) -> StreamAssembler:
        return AnthropicStream()


#: Anthropic's marker for the end of a cacheable prefix.
EPHEMERAL = {"type": "ephemeral"}


def _place_breakpoints(
    body: dict[str, Any], messages: Sequence[Message], last_blocks: list[dict[str, Any] | None], stable_prefix: Any
) -> None:
    """``cache_control`` at the end of the system prompt and at the end of the context's stable prefix.

    ``stable_prefix`` counts the leading messages expected unchanged next turn (system ones
    included); its last non-system message's last block ends the second cached prefix.
    """
    if body.get("system"):
        body["system"][-1]["cache_control"] = EPHEMERAL
    if not isinstance(stable_prefix, int) or isinstance(stable_prefix, bool) or stable_prefix <= 0:
        return
    leading = [i for i, m in enumerate(messages[:stable_prefix]) if m.role != "system"]
    if not leading:
        return
    block = last_blocks[leading[-1]]
    if block is not None and (block.get("type") != "text" or block.get("text")):  # empty text cannot be cached
        block["cache_control"] = EPHEMERAL


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


# -- reading replies --------------------------------------------------------------------------


def parse_reply(data: Any) -> Completion:
    """A Messages API ``message`` object as a :class:`Completion`; raises ``Malformed`` or ``ServerSaid``."""
    data = obj(data, "the reply")
    _raise_error(data)
    text, calls = [], []
    for i, raw in enumerate(arr(data.get("content"), "content")):
        block = obj(raw, f"content[{i}]")
        if block.get("type") == "text":
            text.append(string(block.get("text"), f"content[{i}].text"))
        elif block.get("type") == "tool_use":
            if not isinstance(block.get("input"), dict):
                raise Malformed(
                    f"content[{i}].input of a tool_use must be a JSON object, got {kind(block.get('input'))}"
                )
            calls.append(tool_call(block.get("id"), block.get("name"), block["input"], f"content[{i}]"))
    return completion("".join(text), calls, data.get("stop_reason"), **_usage(data.get("usage")))


def _raise_error(data: dict[str, Any]) -> None:
    if data.get("type") != "error":
        return
    error = data.get("error")
    if isinstance(error, dict):
        raise ServerSaid(f"{error.get('message')} ({error.get('type')})")
    raise ServerSaid(str(error)[:300])


def _usage(value: Any) -> dict[str, Any]:
    """The counts of an Anthropic ``usage`` object: the prompt is fresh input plus both cache kinds."""
    if value is None or value == {}:
        return {"prompt": None, "output": None}
    if not isinstance(value, dict):
        return {"prompt": -1, "output": -1}
    parts = [
        tokens(value.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    ]
    if any(p is None for p in parts):
        return {"prompt": -1, "output": -1}
    fresh, written, read = (p or 0 for p in parts)
    return {"prompt": fresh + written + read, "output": value.get("output_tokens") or 0, "cached": read}


class AnthropicStream(StreamAssembler):
    """Assembles Messages API stream events: text and ``input_json`` deltas, usage.

    The reply is complete once ``message_delta`` carries its ``stop_reason``;
    ``message_stop`` ends the stream but is optional.
    """

    def __init__(self) -> None:
        self.blocks: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] = {}
        self.stop_reason: str | None = None

    def feed(self, event: Event) -> str:
        data = obj(loads(event.data, "a stream event"), "a stream event")
        kind_ = data.get("type", event.event)
        if kind_ == "error":
            error = data.get("error")
            error = error if isinstance(error, dict) else {}
            raise ServerSaid(f"{error.get('type')}: {error.get('message')}")
        if kind_ == "content_block_delta":
            return self._delta(data)
        if kind_ == "content_block_start":
            number = index(data.get("index"), "content_block_start.index")
            block = obj(data.get("content_block"), "content_block_start.content_block")
            self.blocks[number] = {
                "type": block.get("type"),
                "id": block.get("id"),
                "name": block.get("name"),
                "text": [string(block.get("text"), "content_block.text", optional=True)],
                "json": [],
            }
        elif kind_ == "message_start":
            message = obj(data.get("message"), "message_start.message")
            self._add_usage(message.get("usage"))
        elif kind_ == "message_delta":
            delta = obj(data.get("delta") or {}, "message_delta.delta")
            if delta.get("stop_reason") is not None:
                self.stop_reason = string(delta["stop_reason"], "message_delta.delta.stop_reason")
                self.complete = True
            self._add_usage(data.get("usage"))
        elif kind_ == "message_stop":
            self.done = True
        return ""

    def _add_usage(self, usage: Any) -> None:
        if usage is not None:
            self.usage.update(obj(usage, "usage"))

    def _delta(self, data: dict[str, Any]) -> str:
        number = index(data.get("index"), "content_block_delta.index")
        block = self.blocks.get(number)
        if block is None:
            raise Malformed(f"content_block_delta for block {number}, which never started")
        delta = obj(data.get("delta"), "content_block_delta.delta")
        if delta.get("type") == "text_delta":
            piece = string(delta.get("text"), "text_delta.text")
            block["text"].append(piece)
            return piece
        if delta.get("type") == "input_json_delta":
            block["json"].append(string(delta.get("partial_json"), "input_json_delta.partial_json"))
        return ""

    def finish(self) -> Completion:
        if not self.complete:
            raise Incomplete("the stream ended without a stop_reason")
        text, calls = [], []
        for number, block in sorted(self.blocks.items()):
            if block["type"] == "text":
                text.append("".join(block["text"]))
            elif block["type"] == "tool_use":
                arguments = "".join(block["json"]) or "{}"  # streamed JSON text: tool_call checks it is an object
                calls.append(tool_call(block["id"], block["name"], arguments, f"content[{number}]"))
        return completion("".join(text), calls, self.stop_reason, **_usage(self.usage or None))
