"""The ``openai`` backend: any server that speaks OpenAI's ``/v1/chat/completions``.

OpenAI itself, vLLM, SGLang, TGI, ``transformers serve``, the llama.cpp server, Ollama,
LM Studio... ``base_url`` is the API root including ``/v1`` (``http://localhost:8000/v1``),
as in OpenAI's own SDK. Replies are read by one parser per form (whole and streamed)
that accepts what the API documents and refuses the rest with a ``BackendError``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import httpx

from finite_memory import Completion, Message, Tokenizer
from finite_memory._provider_messages import to_openai

from ._http import HTTPBackend, ServerSaid, StreamAssembler, env_or
from ._limits import Limits
from ._parse import Incomplete, Malformed, arr, completion, index, loads, obj, string, tool_call
from ._retry import Retry
from ._sse import Event
from ._tokenizers import resolve_tokenizer

__all__ = ["OpenAIBackend"]

#: Models that refuse ``max_tokens`` and want ``max_completion_tokens`` (OpenAI's reasoning models).
REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.IGNORECASE)


class OpenAIBackend(HTTPBackend):
    """A chat model behind an OpenAI-compatible ``/chat/completions`` endpoint.

    Args:
        model: the model name the server knows (``"gpt-4o-mini"``, ``"Qwen/Qwen2.5-7B"``).
        base_url: the API root, ``/v1`` included; defaults to ``$OPENAI_BASE_URL``, then
            ``https://api.openai.com/v1``. ``user:password@`` in it is sent as HTTP basic
            auth and never shown.
        api_key: sent as a bearer token; defaults to ``$OPENAI_API_KEY``. Local servers
            usually need none. Whitespace around it is stripped; it never appears in an
            error, a log line or a ``repr``.
        timeout: seconds to wait for the server (per read; ``limits.deadline`` bounds a turn).
        connect_timeout: seconds to wait for a connection.
        max_retries: retries on connect errors, timeouts, 429 and 5xx (see :class:`Retry`).
        retry: a :class:`Retry` for full control of the backoff (overrides ``max_retries``).
        headers: extra headers sent with every request (``OpenAI-Organization``...).
        stream_usage: ask for token usage at the end of a stream
            (``stream_options.include_usage``); turn it off for a server that rejects it.
        tokenizer: count tokens exactly instead of estimating: ``"tiktoken"`` (OpenAI
            models; ``pip install "finite-memory-api[tiktoken]"``), the path of the served
            model's ``tokenizer.json`` or of its folder (vLLM, SGLang, TGI, ``transformers
            serve``; ``pip install "finite-memory-api[tokenizers]"``), or any
            :class:`~finite_memory.Tokenizer`.
        tokenize: ``"vllm"`` or ``"llama.cpp"`` to count with the server's ``/tokenize``.
            With neither, the memory estimates and calibrates from each reply's usage.
        max_completion_tokens: send the reply length as ``max_completion_tokens`` (what
            OpenAI's reasoning models require) instead of ``max_tokens``; by default, for
            model names starting with ``o1``/``o3``/``o4``/``gpt-5``.
        prompt_cache_key: ``True`` sends a ``prompt_cache_key`` derived from the memory's
            session (a hash, not the name), so one session's turns hit one prefix cache; a
            string is sent as it is.
        limits: bounds on what the server may send (:class:`Limits`).
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
        tokenizer: str | Tokenizer | None = None,
        tokenize: Literal["vllm", "llama.cpp"] | None = None,
        max_completion_tokens: bool | None = None,
        prompt_cache_key: bool | str = False,
        limits: Limits | None = None,
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
            limits=limits,
            transport=transport,
            async_transport=async_transport,
        )
        if max_completion_tokens is not None and not isinstance(max_completion_tokens, bool):
            raise TypeError(f"max_completion_tokens must be True, False or None, got {max_completion_tokens!r}")
        if not isinstance(prompt_cache_key, (bool, str)) or prompt_cache_key == "":
            raise TypeError(f"prompt_cache_key must be True, False or a non-empty str, got {prompt_cache_key!r}")
        self.stream_usage = bool(stream_usage)
        self.max_completion_tokens = (
            bool(REASONING_MODEL.match(model)) if max_completion_tokens is None else max_completion_tokens
        )
        self.prompt_cache_key = prompt_cache_key
        self.tokenizer = resolve_tokenizer(self, tokenizer, tokenize)

    def _auth_headers(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self._key.reveal()}"} if self._key is not None else {}

    def _max_tokens_field(self) -> str:
        return "max_completion_tokens" if self.max_completion_tokens else "max_tokens"

    def _body(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        options.pop("stable_prefix", None)  # OpenAI caches prefixes by itself; no breakpoints to place
        session = options.pop("session", None)
        body = {"model": self.model, "messages": to_openai(messages), **options}
        if self.prompt_cache_key is not False and "prompt_cache_key" not in body:
            if isinstance(self.prompt_cache_key, str):
                body["prompt_cache_key"] = self.prompt_cache_key
            elif isinstance(session, str):
                body["prompt_cache_key"] = "fm-" + hashlib.sha256(session.encode()).hexdigest()[:32]
        return body

    def _call(self, messages: Sequence[Message], options: dict[str, Any], stream: bool) -> Any:
        if stream and self.stream_usage:
            options.setdefault("stream_options", {"include_usage": True})
        return super()._call(messages, options, stream)

    def _parse(self, data: Any) -> Completion:
        return parse_reply(data)

    def _assembler(self) -> StreamAssembler:
        return OpenAIStream()


# -- reading replies --------------------------------------------------------------------------


def parse_reply(data: Any) -> Completion:
    """A ``chat.completion`` object as a :class:`Completion`; raises ``Malformed`` or ``ServerSaid``."""
    data = obj(data, "the reply")
    _raise_error(data)
    choices = arr(data.get("choices"), "choices")
    if not choices:
        raise Malformed("the reply has no choices")
    choice = obj(choices[0], "choices[0]")
    message = obj(choice.get("message"), "choices[0].message")
    text = _content(message.get("content"), "choices[0].message.content")
    calls = []
    for i, raw in enumerate(_list(message.get("tool_calls"))):
        call = obj(raw, f"tool_calls[{i}]")
        function = obj(call.get("function"), f"tool_calls[{i}].function")
        calls.append(tool_call(call.get("id"), function.get("name"), function.get("arguments"), f"tool_calls[{i}]"))
    return completion(text, calls, choice.get("finish_reason"), **_usage(data.get("usage")))


def _raise_error(data: dict[str, Any]) -> None:
    error = data.get("error")
    if error is None:
        return
    if isinstance(error, dict):
        message = error.get("message")
        raise ServerSaid(message if isinstance(message, str) else str(error)[:300])
    raise ServerSaid(str(error)[:300])


def _list(value: Any) -> list[Any]:
    return [] if value is None else arr(value, "tool_calls")


def _content(value: Any, where: str) -> str:
    """Message content: a string, null, or a list of ``{"type": "text", "text": ...}`` parts."""
    if value is None or isinstance(value, str):
        return string(value, where, optional=True)
    pieces = []
    for i, raw in enumerate(arr(value, where)):
        part = obj(raw, f"{where}[{i}]")
        if part.get("type") == "text":
            pieces.append(string(part.get("text"), f"{where}[{i}].text"))
    return "".join(pieces)


def _usage(value: Any) -> dict[str, Any]:
    """The counts of an OpenAI ``usage`` object, for :func:`~finite_memory_api._parse.completion`."""
    if value is None:
        return {"prompt": None, "output": None}
    if not isinstance(value, dict):
        return {"prompt": -1, "output": -1}  # reported but unreadable: the usage is ignored
    prompt_details = value.get("prompt_tokens_details")
    output_details = value.get("completion_tokens_details")
    return {
        "prompt": value.get("prompt_tokens", -1),
        "output": value.get("completion_tokens"),
        "cached": prompt_details.get("cached_tokens") if isinstance(prompt_details, dict) else 0,
        "reasoning": output_details.get("reasoning_tokens") if isinstance(output_details, dict) else None,
    }


class OpenAIStream(StreamAssembler):
    """Assembles ``chat.completion.chunk`` events: text deltas, tool-call deltas, usage.

    The reply is complete once a choice carries a ``finish_reason``; ``[DONE]`` ends the
    stream but is optional (``transformers serve`` never sends it), as the official SDK reads it.
    """

    def __init__(self) -> None:
        self.text: list[str] = []
        self.calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.usage: Any = None

    def feed(self, event: Event) -> str:
        if event.data.strip() == "[DONE]":
            self.done = True
            return ""
        chunk = obj(loads(event.data, "a stream event"), "a stream event")
        _raise_error(chunk)
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        piece = ""
        for i, raw in enumerate(_list(chunk.get("choices"))):
            choice = obj(raw, f"choices[{i}]")
            if choice.get("index", 0) != 0:
                continue
            delta = obj(choice.get("delta") or {}, "choices[].delta")
            if delta.get("content") is not None:
                piece += _content(delta["content"], "delta.content")
            for call in _list(delta.get("tool_calls")):
                self._add_call(obj(call, "delta.tool_calls[]"))
            if choice.get("finish_reason") is not None:
                self.finish_reason = string(choice["finish_reason"], "finish_reason")
                self.complete = True
        if piece:
            self.text.append(piece)
        return piece

    def _add_call(self, delta: dict[str, Any]) -> None:
        number = index(delta.get("index", len(self.calls)), "delta.tool_calls[].index")
        slot = self.calls.setdefault(number, {"id": "", "name": "", "arguments": []})
        if delta.get("id"):
            slot["id"] = string(delta["id"], "delta.tool_calls[].id")
        function = obj(delta.get("function") or {}, "delta.tool_calls[].function")
        if function.get("name"):
            slot["name"] += string(function["name"], "delta.tool_calls[].function.name")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a server that sends the arguments whole, as an object
            slot["arguments"] = [arguments]
        elif arguments:
            slot["arguments"].append(string(arguments, "delta.tool_calls[].function.arguments"))

    def finish(self) -> Completion:
        if not self.complete:
            raise Incomplete("the stream ended without a finish_reason")
        calls = []
        for number, slot in sorted(self.calls.items()):
            parts = slot["arguments"]
            arguments = parts[0] if len(parts) == 1 and isinstance(parts[0], dict) else "".join(map(str, parts))
            calls.append(tool_call(slot["id"], slot["name"], arguments, f"tool_calls[{number}]"))
        return completion("".join(self.text), calls, self.finish_reason, **_usage(self.usage))
