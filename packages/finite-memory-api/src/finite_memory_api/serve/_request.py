"""Reading a ``POST /v1/chat/completions`` body: its messages, and the options that go upstream."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from finite_memory import Message

from ._errors import bad_request

#: Fields the proxy reads itself; every other field passes through to the upstream request.
_OWN_FIELDS = frozenset(
    {"messages", "model", "stream", "stream_options", "n", "max_tokens", "max_completion_tokens", "temperature"}
)

#: OpenAI fields that an Anthropic upstream understands (after the backend's conversion).
_ANTHROPIC_FIELDS = frozenset({"tools", "tool_choice", "top_p", "top_k"})

_MESSAGE_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A chat-completions request, checked: its messages and what goes upstream with them.

    ``options`` are backend call options: ``max_new_tokens``, ``temperature`` and the
    fields the client sent that pass through unchanged (``tools``, ``tool_choice``...).
    """

    messages: list[Message]
    model: str | None
    stream: bool
    include_usage: bool
    options: dict[str, Any]


def parse_chat_request(raw: bytes, scheme: str) -> ChatRequest:
    """The request in ``raw``, or a 400 :class:`ProxyError` that says what is wrong with it.

    ``scheme`` is the upstream's (``"openai"`` or ``"anthropic"``): an Anthropic upstream
    gets only the fields it understands.
    """
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request("the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("the request body must be a JSON object", code="invalid_json")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty list of messages", code="missing_messages", param="messages")
    parsed = [_message(item, i) for i, item in enumerate(messages)]

    model = body.get("model")
    if model is not None and (not isinstance(model, str) or not model or len(model) > 256):
        raise bad_request("'model' must be a non-empty string of at most 256 characters", param="model")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise bad_request("'stream' must be true or false", param="stream")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise bad_request("'stream_options' must be an object", param="stream_options")
    n = body.get("n")
    if n is not None and n != 1:
        raise bad_request("'n' must be 1: the proxy keeps one reply per turn", param="n")
    return ChatRequest(
        messages=parsed,
        model=model,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        options=_options(body, scheme),
    )


def _options(body: dict[str, Any], scheme: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    temperature = body.get("temperature")
    if temperature is not None:
        if not _number(temperature) or not 0 <= temperature <= 2:
            raise bad_request("'temperature' must be a number from 0 to 2", param="temperature")
        options["temperature"] = float(temperature)
    for field in ("max_tokens", "max_completion_tokens"):
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise bad_request(f"'{field}' must be a positive integer", param=field)
        if field == "max_completion_tokens" and scheme == "openai":
            options["max_completion_tokens"] = value  # reasoning models take only this field
        else:
            options["max_new_tokens"] = value
    if "max_completion_tokens" in options:
        options.pop("max_new_tokens", None)
    for field, value in body.items():
        if field in _OWN_FIELDS or value is None:
            continue
        if scheme == "openai" or field in _ANTHROPIC_FIELDS:
            options[field] = value
        elif field == "stop" and scheme == "anthropic":
            options["stop_sequences"] = [value] if isinstance(value, str) else value
    return options


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _message(item: Any, index: int) -> Message:
    where = f"messages[{index}]"
    if not isinstance(item, dict):
        raise bad_request(f"{where} must be an object with 'role' and 'content'", param=where)
    role = _MESSAGE_ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        allowed = ", ".join(_MESSAGE_ROLES)
        raise bad_request(f"{where}.role must be one of {allowed}, got {item.get('role')!r}", param=f"{where}.role")
    content = _content(item.get("content"), where)
    try:
        return Message(
            role,  # type: ignore[arg-type]
            content,
            name=item.get("name"),
            tool_calls=item.get("tool_calls") or None,
            tool_call_id=item.get("tool_call_id") if role == "tool" else None,
        )
    except (TypeError, ValueError) as exc:
        raise bad_request(f"{where}: {exc}", param=where) from None


def _content(content: Any, where: str) -> str:
    """A message's text: a string, null (an assistant turn of tool calls), or a list of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise bad_request(
                    f"{where}.content: only text parts are supported, got {kind!r}", param=f"{where}.content"
                )
            texts.append(part["text"])
        return "\n".join(texts)
    raise bad_request(f"{where}.content must be a string or a list of text parts", param=f"{where}.content")
