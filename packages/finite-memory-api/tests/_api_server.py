"""A real HTTP server on 127.0.0.1 that speaks OpenAI's and Anthropic's chat APIs, and fails on demand.

It answers ``POST /v1/chat/completions``, ``POST /v1/messages`` and ``POST /tokenize``
(vLLM and llama.cpp forms), whole or as server-sent events, from a
``ThreadingHTTPServer`` in a daemon thread. It is not a language model: it echoes the
last user message, and calls the first tool it is offered when the last message is the
user's. Its usage counts come from its own tokenizer rule (words cut into pieces of at
most four letters, each punctuation mark one token, three tokens a message and three a
prompt), which is deliberately not the ``ApproxTokenizer``'s characters-over-four rule.

``server.faults`` is a list the next requests consume, one fault each:
``"429"`` / ``"429:SECONDS"`` (with ``Retry-After``), ``"500"``, ``"503"``, ``"400"``,
``"401"`` (its message quotes the key it got), ``"cut"`` (the stream ends cleanly
half-way, with no terminator), ``"drop"`` (the connection dies half-way through a
stream), ``"slow:SECONDS"`` (sleep, then answer), ``"bad_json"`` (a 200 whose body is
not JSON), ``"bad_sse"`` (a stream with a line that is not an SSE field) and
``"error_200"`` (an error body with status 200), ``"bad_chunk"`` (a stream with an event
whose data is not JSON), ``"error_event"`` (an error event half-way through a stream) and
``"stall:SECONDS"`` (a stream that stops half-way for that
long, then goes on).

Hostile faults: ``"too_long"`` (a context-length refusal without numbers), ``"redirect"``,
``"drip"`` (a stream that sends one byte every 50 ms), ``"endless"`` (a stream of text
events that never finishes), ``"big_body"`` / ``"big_error"`` (a 64 MiB reply or error
body), ``"gzip_bomb"`` (a 1 GiB body gzipped to about 1 MiB), ``"long_line"`` (a 64 MiB
event-stream line), ``"no_done"`` (a stream that ends after its finish reason with no
``[DONE]`` or ``message_stop``, as ``transformers serve`` does). Each stops by itself
within a few seconds of the client leaving.

``server.prompt_counter``: counts prompts with another tokenizer (a real one, in the
benchmark). ``server.context_limit``: when set, a prompt counted over it is refused with the
provider's context-length error. Usage reports cached prompt tokens: the prefix of
messages shared with the previous request (OpenAI), or the system prompt when it
carries ``cache_control`` and was seen before (Anthropic).
"""

from __future__ import annotations

import json
import math
import re
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The API key tests send; it must never show up in an error, a log line or a repr.
KEY = "sk-test-7f3a9c1e5b2d4f6a8c0e2b4d6f8a0c2e"

_TOKEN = re.compile(r"[^\W\d_]+|\d|[^\w\s]")


def count_tokens(text: str) -> int:
    """The server's tokenizer rule for one text."""
    return sum(max(1, math.ceil(len(t) / 4)) if t[0].isalpha() else 1 for t in _TOKEN.findall(text))


def tokens_of(text: str) -> list[int]:
    """Token ids for ``text`` (only their number matters)."""
    return list(range(count_tokens(text)))


PER_MESSAGE = 3
PER_PROMPT = 3


def openai_prompt_tokens(messages: list[dict[str, Any]]) -> int:
    total = PER_PROMPT
    for m in messages:
        total += PER_MESSAGE + count_tokens(m.get("content") or "")
        if m.get("tool_calls"):
            total += count_tokens(json.dumps(m["tool_calls"]))
        if m.get("tool_call_id"):
            total += count_tokens(m["tool_call_id"])
    return total


def anthropic_system(body: dict[str, Any]) -> str:
    """The system prompt, sent as a string or as text blocks (with ``cache_control``)."""
    system = body.get("system") or ""
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


def anthropic_prompt_tokens(body: dict[str, Any]) -> int:
    system = anthropic_system(body)
    total = PER_PROMPT + (PER_MESSAGE + count_tokens(system) if system else 0)
    for m in body["messages"]:
        blocks = m["content"] if isinstance(m["content"], list) else [{"type": "text", "text": m["content"]}]
        for b in blocks:
            total += PER_MESSAGE
            if b["type"] == "text":
                total += count_tokens(b["text"])
            elif b["type"] == "tool_use":
                total += count_tokens(json.dumps(b["input"])) + count_tokens(b["id"])
            elif b["type"] == "tool_result":
                total += count_tokens(b["content"]) + count_tokens(b["tool_use_id"])
    return total


class FakeLLMServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # the default backlog of 5 resets connections when 50 clients connect at once

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.faults: list[str] = []
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.delay = 0.0  # seconds every request waits before it is answered
        self.context_limit: int | None = None
        self.tokenize_answer: Any = None  # when set, what /tokenize answers
        #: counts an OpenAI request's messages in place of the server's own rule (a real tokenizer, for benchmarks)
        self.prompt_counter: Callable[[list[dict[str, Any]]], int] | None = None
        self.last_messages: list[Any] = []
        self.seen_systems: set[str] = set()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(5)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out leave broken pipes behind; that is the point of those tests

    def next_fault(self) -> str:
        with self.lock:
            return self.faults.pop(0) if self.faults else ""

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms delayed-ACK stalls
    server: FakeLLMServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ---------------------------------------------------------------------

    def _send_json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(data).encode()
        self._send_raw(status, raw, headers)

    def _send_raw(self, status: int, raw: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(raw)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()

    def _chunk(self, text: str) -> None:
        raw = text.encode()
        self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _drop(self) -> None:
        self.wfile.write(b'40\r\ndata: {"trunc')  # half a chunk, then the connection dies
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def _stream(self, events: list[str], fault: str, error_event: str) -> None:
        self._start_stream()
        half = len(events) // 2
        for i, event in enumerate(events):
            if i == half and fault == "cut":
                break
            if i == half and fault == "drop":
                self._drop()
                return
            if i == half and fault == "bad_sse":
                self._chunk("this line is not an SSE field\n\n")
            if i == half and fault == "bad_chunk":
                self._chunk('data: {"choices": [oops\n\n')
            if i == half and fault == "error_event":  # the server gives up mid-stream, as Anthropic's "overloaded"
                self._chunk(error_event)
                break
            if i == half and fault.startswith("stall:"):
                time.sleep(float(fault.split(":")[1]))
            self._chunk(event)
        self._end_stream()

    # -- requests -----------------------------------------------------------------------

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        with self.server.lock:
            self.server.requests.append(
                {"path": self.path, "headers": dict(self.headers), "body": body, "port": self.client_address[1]}
            )
        fault = self.server.next_fault()
        if self.server.delay:
            time.sleep(self.server.delay)
        anthropic = self.path == "/v1/messages"
        if fault.startswith("slow:"):
            time.sleep(float(fault.split(":")[1]))
        if fault.startswith("429"):
            wait = fault.split(":")[1] if ":" in fault else "0"
            return self._error(429, "rate limited by the test server", anthropic, {"retry-after": wait})
        if fault in ("500", "503"):
            return self._error(int(fault), f"the test server failed ({fault})", anthropic)
        if fault == "400":
            return self._error(400, "Invalid 'messages': the test server refuses this request", anthropic)
        if fault == "401":
            key = self.headers.get("x-api-key") or (self.headers.get("authorization") or "").removeprefix("Bearer ")
            return self._error(401, f"Incorrect API key provided: {key}", anthropic)
        if fault == "error_200":
            if anthropic:
                return self._send_json(
                    200, {"type": "error", "error": {"type": "overloaded_error", "message": "overloaded"}}
                )
            return self._send_json(200, {"error": {"message": "overloaded"}})
        if fault == "bad_json":
            return self._send_raw(200, b'{"choices": [ this is not json')
        if fault == "too_long":  # a context-length refusal that gives no numbers
            if anthropic:
                return self._error(400, "prompt is too long", True)
            error = {
                "message": "context length exceeded",
                "type": "invalid_request_error",
                "code": "context_length_exceeded",
            }
            return self._send_json(400, {"error": error})
        if fault == "redirect":
            return self._send_raw(302, b"", {"location": "http://127.0.0.1:1/elsewhere"})
        if fault in ("drip", "endless", "big_body", "big_error", "gzip_bomb", "long_line"):
            return self._hostile(fault, anthropic)
        if self.path == "/tokenize":
            return self._tokenize(body)
        if self.path == "/v1/chat/completions":
            return self._openai(body, fault)
        if anthropic:
            return self._anthropic(body, fault)
        self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def _hostile(self, fault: str, anthropic: bool) -> None:
        """Replies meant to exhaust a client: each gives up once the client is gone or after 10 s."""
        stop = time.monotonic() + 10
        status = 500 if fault == "big_error" else 200
        self.send_response(status)
        kind = "text/event-stream" if fault in ("drip", "endless", "long_line") else "application/json"
        self.send_header("content-type", kind)
        if fault == "gzip_bomb":
            self.send_header("content-encoding", "gzip")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        try:
            if fault == "drip":
                self._chunk("data: ")
                while time.monotonic() < stop:
                    self._chunk("x")
                    time.sleep(0.05)
            elif fault == "endless":
                event = 'data: {"choices": [{"index": 0, "delta": {"content": "more "}}]}\n\n'
                if anthropic:
                    self._chunk(
                        'data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text"}}\n\n'
                    )
                    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "x"}}
                    event = f"data: {json.dumps(delta)}\n\n"
                while time.monotonic() < stop:
                    self._chunk(event * 50)
            elif fault == "gzip_bomb":
                packer = zlib.compressobj(9, zlib.DEFLATED, 31)
                zeros = b"0" * (1 << 20)
                for _ in range(1024):
                    self._chunk_bytes(packer.compress(zeros))
                self._chunk_bytes(packer.flush())
            else:
                self._chunk("data: " if fault == "long_line" else '{"error": {"message": "')
                filler = "x" * (1 << 16)
                for _ in range(1024):
                    self._chunk(filler)
            self._end_stream()
        except OSError:
            self.close_connection = True  # the client left, as it should

    def _chunk_bytes(self, raw: bytes) -> None:
        if raw:
            self.wfile.write(f"{len(raw):x}\r\n".encode() + raw + b"\r\n")
            self.wfile.flush()

    def _too_long(self, prompt: int, anthropic: bool) -> bool:
        limit = self.server.context_limit
        if limit is None or prompt <= limit:
            return False
        if anthropic:
            self._error(400, f"prompt is too long: {prompt} tokens > {limit} maximum", True)
        else:
            message = (
                f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
                f"{prompt} tokens. Please reduce the length of the messages."
            )
            data = {"error": {"message": message, "type": "invalid_request_error", "code": "context_length_exceeded"}}
            self._send_json(400, data)
        return True

    def _error(self, status: int, message: str, anthropic: bool, headers: dict[str, str] | None = None) -> None:
        if anthropic:
            data: dict[str, Any] = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            data = {"error": {"message": message, "type": "invalid_request_error", "code": status}}
        self._send_json(status, data, headers)

    def _tokenize(self, body: dict[str, Any]) -> None:
        if self.server.tokenize_answer is not None:  # a crafted answer
            return self._send_json(200, self.server.tokenize_answer)
        if "prompt" in body:  # vLLM
            ids = tokens_of(body["prompt"])
            return self._send_json(200, {"count": len(ids), "tokens": ids, "max_model_len": 8192})
        self._send_json(200, {"tokens": tokens_of(body["content"])})  # llama.cpp

    def _answer(self, last: dict[str, Any], tools: bool) -> tuple[str, dict[str, Any] | None]:
        """The reply text, or a tool call when tools are offered and the user spoke last."""
        if tools and last["role"] == "user" and last.get("kind") != "tool_result":
            return "", {"id": "call_1", "name": "get_weather", "arguments": {"city": "Lisbon"}}
        if last.get("kind") == "tool_result":
            return f"The tool said: {last['text']}", None
        return " ".join(["echo:", *last["text"].split()]), None

    # -- OpenAI ---------------------------------------------------------------------------

    def _openai(self, body: dict[str, Any], fault: str) -> None:
        messages = body["messages"]
        last = messages[-1]
        kind = "tool_result" if last["role"] == "tool" else ""
        text, call = self._answer(
            {"role": last["role"], "text": last.get("content") or "", "kind": kind}, _offers_tools(body)
        )
        reasoning = REASONING.match(body["model"]) is not None
        if reasoning and "max_tokens" in body:
            message = (
                "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens'."
            )
            return self._error(400, message, False)
        text, cut = _cut(text, body.get("max_completion_tokens" if reasoning else "max_tokens"))
        counter = self.server.prompt_counter or openai_prompt_tokens
        prompt = counter(messages) + tools_tokens(body)
        if self._too_long(prompt, False):
            return
        shared = 0
        for old, new in zip(self.server.last_messages, messages, strict=False):
            if old != new:
                break
            shared += 1
        self.server.last_messages = messages
        cached = counter(messages[:shared]) - counter([]) if shared else 0
        completion = count_tokens(text) if text else 10
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached},
        }
        if reasoning:
            usage["completion_tokens_details"] = {"reasoning_tokens": 7}
            usage["completion_tokens"] += 7
        finish = "tool_calls" if call else "length" if cut else "stop"
        tool_calls = (
            [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"])},
                }
            ]
            if call
            else None
        )
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text or None}
            if tool_calls:
                message["tool_calls"] = tool_calls
            choice = {"index": 0, "message": message, "finish_reason": finish}
            return self._send_json(
                200, {"id": "chatcmpl-1", "object": "chat.completion", "choices": [choice], "usage": usage}
            )

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
            data = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(data)}\n\n"

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in _pieces(text)]
        if tool_calls:
            arguments = tool_calls[0]["function"]["arguments"]
            third = max(1, len(arguments) // 3)
            events.append(
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["name"], "arguments": ""},
                            }
                        ]
                    }
                )
            )  # type: ignore[index]
            for start in range(0, len(arguments), third):
                events.append(
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[start : start + third]}}]})
                )
        if fault == "no_done":  # transformers serve: finish_reason and usage in one chunk, then the end
            final = json.loads(chunk({}, finish)[len("data: ") :])
            final["usage"] = usage
            events.append(f"data: {json.dumps(final)}\n\n")
        else:
            events.append(chunk({}, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                events.append(f"data: {json.dumps({'id': 'chatcmpl-1', 'choices': [], 'usage': usage})}\n\n")
            events.append("data: [DONE]\n\n")
        self._stream(events, fault, 'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n')

    # -- Anthropic --------------------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any], fault: str) -> None:
        if "max_tokens" not in body:
            return self._error(400, "max_tokens: Field required", True)
        last = body["messages"][-1]
        blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
        final = blocks[-1]
        if final["type"] == "tool_result":
            last_info = {"role": "user", "text": final["content"], "kind": "tool_result"}
        else:
            last_info = {"role": last["role"], "text": final.get("text", ""), "kind": ""}
        text, call = self._answer(last_info, _offers_tools(body))
        text, cut = _cut(text, body["max_tokens"])
        prompt = anthropic_prompt_tokens(body) + tools_tokens(body)
        if self._too_long(prompt, True):
            return
        usage_in: dict[str, int] = {"input_tokens": prompt}
        system = body.get("system")
        if isinstance(system, list) and system and system[-1].get("cache_control"):
            cached = PER_MESSAGE + count_tokens(anthropic_system(body))
            key = anthropic_system(body)
            kind = "cache_read_input_tokens" if key in self.server.seen_systems else "cache_creation_input_tokens"
            self.server.seen_systems.add(key)
            usage_in = {"input_tokens": prompt - cached, kind: cached}
        output = count_tokens(text) if text else 10
        stop = "tool_use" if call else "max_tokens" if cut else "end_turn"
        content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        if call:
            content.append({"type": "tool_use", "id": "toolu_1", "name": call["name"], "input": call["arguments"]})
        if not body.get("stream"):
            data = {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "content": content,
                "stop_reason": stop,
                "usage": {**usage_in, "output_tokens": output},
            }
            return self._send_json(200, data)

        def event(name: str, data: dict[str, Any]) -> str:
            return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"

        events = [
            event(
                "message_start",
                {
                    "message": {
                        "id": "msg_1",
                        "type": "message",
                        "role": "assistant",
                        "content": [],
                        "usage": {**usage_in, "output_tokens": 1},
                    }
                },
            )
        ]
        for index, block in enumerate(content):
            if block["type"] == "text":
                events.append(
                    event("content_block_start", {"index": index, "content_block": {"type": "text", "text": ""}})
                )
                events.append(": ping comment\n\n")
                events += [
                    event("content_block_delta", {"index": index, "delta": {"type": "text_delta", "text": p}})
                    for p in _pieces(text)
                ]
            else:
                events.append(
                    event(
                        "content_block_start",
                        {
                            "index": index,
                            "content_block": {
                                "type": "tool_use",
                                "id": block["id"],
                                "name": block["name"],
                                "input": {},
                            },
                        },
                    )
                )
                raw = json.dumps(block["input"])
                events += [
                    event(
                        "content_block_delta",
                        {"index": index, "delta": {"type": "input_json_delta", "partial_json": raw[i : i + 5]}},
                    )
                    for i in range(0, len(raw), 5)
                ]
            events.append(event("content_block_stop", {"index": index}))
        events.append(event("message_delta", {"delta": {"stop_reason": stop}, "usage": {"output_tokens": output}}))
        if fault != "no_done":
            events.append(event("message_stop", {}))
        self._stream(events, fault, event("error", {"error": {"type": "overloaded_error", "message": "overloaded"}}))


#: Model names the server treats as reasoning models (they refuse ``max_tokens``).
REASONING = re.compile(r"^(o\d|gpt-5)")


def _offers_tools(body: dict[str, Any]) -> bool:
    return "tools" in body and body.get("tool_choice") not in ("none", {"type": "none"})


def tools_tokens(body: dict[str, Any]) -> int:
    """What tool schemas add to a prompt, as a real server's template renders them."""
    return count_tokens(json.dumps(body["tools"])) + 10 if body.get("tools") else 0


def _cut(text: str, limit: Any) -> tuple[str, bool]:
    """The reply cut to ``limit`` words (the server's reply tokens), and whether it was cut."""
    words = text.split(" ")
    if isinstance(limit, int) and len(words) > limit:
        return " ".join(words[:limit]), True
    return text, False


def _pieces(text: str) -> Iterator[str]:
    words = text.split(" ")
    for i, word in enumerate(words):
        yield word if i == 0 else " " + word
