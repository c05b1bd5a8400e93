"""``Context.to_openai()`` / ``to_anthropic()``: the shapes the official SDKs take, sent through them to 127.0.0.1."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finite_memory import Context, Memory, Message
from finite_memory._provider_messages import to_anthropic, to_openai

CALL = {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Lisbon"}'}}

OPENAI_REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 0,
    "model": "m",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
ANTHROPIC_REPLY = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "m",
    "content": [{"type": "text", "text": "ok"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1},
}


class Recorder(ThreadingHTTPServer):
    """A loopback server answering both APIs and keeping the request bodies."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Recorder

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.bodies.append(body)
        payload = json.dumps(ANTHROPIC_REPLY if self.path.endswith("/messages") else OPENAI_REPLY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def context() -> Context:
    memory = Memory("hybrid", max_tokens=2048, system="You are helpful.")
    memory.add("user", "Hi, I am Alice.", name="alice", meta={"source": "web"})
    memory.add("assistant", "Hello Alice!")
    memory.add("user", "Weather in Lisbon?")
    memory.add("assistant", "", tool_calls=[CALL])
    memory.add("tool", "18 C, sunny", tool_call_id="call_1", meta={"source": "api"})
    memory.add("assistant", "It is 18 C and sunny.")
    memory.add("user", "Thanks!")
    return memory.context(query="weather")


def keys_of(typed_dict: Any) -> set[str]:
    return set(typed_dict.__required_keys__) | set(typed_dict.__optional_keys__)


def test_openai_messages_hold_only_what_the_sdk_types_know(context: Context) -> None:
    types = pytest.importorskip("openai.types.chat")
    allowed = {
        "system": keys_of(types.ChatCompletionSystemMessageParam),
        "user": keys_of(types.ChatCompletionUserMessageParam),
        "assistant": keys_of(types.ChatCompletionAssistantMessageParam),
        "tool": keys_of(types.ChatCompletionToolMessageParam),
    }
    messages = context.to_openai()
    roles = [m["role"] for m in messages]
    assert roles == ["system", "user", "assistant", "user", "assistant", "tool", "assistant", "user"]
    for message in messages:
        assert set(message) <= allowed[message["role"]], message
    assert messages[1] == {"role": "user", "content": "Hi, I am Alice.", "name": "alice"}
    assert messages[4] == {"role": "assistant", "content": None, "tool_calls": [CALL]}
    assert messages[5] == {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}
    assert "meta" in context.as_dicts()[1] and "id" in context.as_dicts()[1]  # the archive's form keeps them


def test_the_openai_sdk_sends_them_unchanged(context: Context, recorder: Recorder) -> None:
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{recorder.url}/v1", api_key="test-key", max_retries=0)
    reply = client.chat.completions.create(model="m", messages=context.to_openai())
    assert reply.choices[0].message.content == "ok"
    assert recorder.bodies[-1]["messages"] == context.to_openai()


def test_anthropic_request_splits_system_and_uses_blocks(context: Context) -> None:
    types = pytest.importorskip("anthropic.types")
    request = context.to_anthropic()
    assert set(request) == {"system", "messages"}
    assert request["system"] == "You are helpful."
    turns = request["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert turns[3]["content"] == [{"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Lisbon"}}]
    assert turns[4]["content"] == [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C, sunny"}]
    blocks = {
        "text": keys_of(types.TextBlockParam),
        "tool_use": keys_of(types.ToolUseBlockParam),
        "tool_result": keys_of(types.ToolResultBlockParam),
    }
    roles = {"user": keys_of(types.UserMessageParam), "assistant": keys_of(types.AssistantMessageParam)}
    for turn in turns:
        assert set(turn) <= roles[turn["role"]]
        for block in turn["content"]:
            assert set(block) <= blocks[block["type"]], block


def test_the_anthropic_sdk_sends_them_unchanged(context: Context, recorder: Recorder) -> None:
    anthropic = pytest.importorskip("anthropic")
    client = anthropic.Anthropic(base_url=recorder.url, api_key="test-key", max_retries=0)
    reply = client.messages.create(model="m", max_tokens=16, **context.to_anthropic())
    assert reply.content[0].text == "ok"
    sent = recorder.bodies[-1]
    assert sent["system"] == "You are helpful." and sent["messages"] == context.to_anthropic()["messages"]


def test_anthropic_leaves_out_what_the_api_refuses() -> None:
    request = to_anthropic([Message("user", "hi"), Message("assistant", ""), Message("user", "still there?")])
    assert "system" not in request
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "still there?"}]}
    ]
    with pytest.raises(ValueError, match="not a JSON object"):  # the gate refuses what tool_use could not carry
        Message("assistant", "", tool_calls=[{**CALL, "function": {"name": "f", "arguments": "[1]"}}])
    assert to_openai([Message("tool", "x", tool_call_id="c", name="f")]) == [
        {"role": "tool", "content": "x", "tool_call_id": "c"}
    ]


def _conversation(data: st.DataObject) -> list[Message]:
    messages = [Message("system", "sys")] if data.draw(st.booleans()) else []
    for index in range(data.draw(st.integers(0, 6))):
        messages.append(Message("user", data.draw(st.sampled_from(["", "q", "more"]))))
        if data.draw(st.booleans()):
            call = {"id": f"c{index}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            messages.append(Message("assistant", data.draw(st.sampled_from(["", "let me see"])), tool_calls=[call]))
            messages.append(Message("tool", data.draw(st.sampled_from(["", "42"])), tool_call_id=f"c{index}"))
        messages.append(Message("assistant", data.draw(st.sampled_from(["", "a"]))))
    return messages


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_conversation_becomes_a_valid_anthropic_request(data: st.DataObject) -> None:
    messages = _conversation(data)
    turns = to_anthropic(messages)["messages"]
    roles = [t["role"] for t in turns]
    assert all(a != b for a, b in itertools.pairwise(roles))  # user and assistant alternate
    blocks = [b for t in turns for b in t["content"]]
    assert all(b["text"] for b in blocks if b["type"] == "text") and all(t["content"] for t in turns)
    used = [b["id"] for b in blocks if b["type"] == "tool_use"]
    answered = [b["tool_use_id"] for b in blocks if b["type"] == "tool_result"]
    assert used == answered == [m.tool_call_id for m in messages if m.role == "tool"]
    assert len(to_openai(messages)) == len(messages)
