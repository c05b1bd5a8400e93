"""The openai backend against a real loopback server: whole, streamed, async, tools, pooling."""

from __future__ import annotations

import json

import httpx
import pytest
from _api_chats import TOOLS
from _api_server import KEY, FakeLLMServer, openai_prompt_tokens

from finite_memory import Chat, Completion, Memory, Message, load_backend
from finite_memory_api import OpenAIBackend, Retry


def backend(server: FakeLLMServer, **options: object) -> OpenAIBackend:
    return OpenAIBackend("test-model", base_url=server.url + "/v1", api_key=KEY, **options)  # type: ignore[arg-type]


def test_complete_sends_the_openai_request_and_reads_usage(server: FakeLLMServer) -> None:
    with backend(server, headers={"X-Team": "memory"}) as b:
        messages = [Message("system", "Be brief."), Message("user", "Hello there")]
        done = b.complete(messages, max_new_tokens=16, temperature=0.0, seed=3)
    assert done.text == "echo: Hello there" and done.finish_reason == "stop"
    request = server.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["headers"]["X-Team"] == "memory"
    body = request["body"]
    assert body == {
        "model": "test-model",
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        "max_tokens": 16,
        "temperature": 0.0,
        "seed": 3,
    }
    assert done.usage["prompt_tokens"] == openai_prompt_tokens(body["messages"])
    assert done.stats["generated_tokens"] == done.usage["completion_tokens"]
    assert done.stats["retries"] == 0 and done.stats["request_ms"] > 0


def test_stream_yields_pieces_then_the_completion(server: FakeLLMServer) -> None:
    with backend(server) as b:
        items = list(b.stream([Message("user", "one two three")]))
    *pieces, done = items
    assert pieces == ["echo:", " one", " two", " three"]
    assert isinstance(done, Completion) and done.text == "echo: one two three"
    assert done.usage["prompt_tokens"] > 0, "stream_options.include_usage must bring usage back"
    assert server.requests[0]["body"]["stream"] is True
    assert server.requests[0]["body"]["stream_options"] == {"include_usage": True}


def test_stream_without_usage_for_servers_that_reject_stream_options(server: FakeLLMServer) -> None:
    with backend(server, stream_usage=False) as b:
        *_, done = b.stream([Message("user", "hi")])
    assert "stream_options" not in server.requests[0]["body"]
    assert isinstance(done, Completion) and done.usage == {} and done.text == "echo: hi"


async def test_async_complete_and_stream(server: FakeLLMServer) -> None:
    b = backend(server)
    try:
        done = await b.acomplete([Message("user", "async hello")])
        assert done.text == "echo: async hello"
        pieces = [p async for p in b.astream([Message("user", "a b")])]
        assert pieces[:-1] == ["echo:", " a", " b"] and isinstance(pieces[-1], Completion)
    finally:
        await b.aclose()
    assert b._async_client is None


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_calls_round_trip_through_messages(server: FakeLLMServer, streamed: bool) -> None:
    memory = Memory(max_tokens=1024, reserve_output=64)
    with Chat(backend(server), memory) as chat:
        if streamed:
            assert list(chat.stream("What is the weather in Lisbon?", tools=TOOLS)) == []
            reply = chat.last_reply
            assert reply is not None
        else:
            reply = chat.send("What is the weather in Lisbon?", tools=TOOLS)
        assert reply.tool_calls is not None
        (call,) = reply.tool_calls
        assert call["id"] == "call_1" and call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Lisbon"}
        stored = memory.messages[-1]
        assert stored.role == "assistant" and stored.tool_calls == reply.tool_calls
        memory.add("tool", "18 C, sunny", tool_call_id=call["id"])
        final = chat.send("And so?")
    sent = server.requests[-1]["body"]["messages"]
    assistant = next(m for m in sent if m.get("tool_calls"))
    assert assistant["content"] is None and assistant["tool_calls"][0]["id"] == "call_1"
    tool = next(m for m in sent if m["role"] == "tool")
    assert tool == {"role": "tool", "content": "18 C, sunny", "tool_call_id": "call_1"}
    assert final.text == "echo: And so?"


def test_one_pooled_connection_per_backend_closed_by_chat(server: FakeLLMServer) -> None:
    chat = Chat(backend(server), Memory(max_tokens=1024, reserve_output=64))
    with chat:
        for i in range(4):
            chat.send(f"turn {i}")
        list(chat.stream("streamed turn"))
        client = chat.backend._client  # type: ignore[attr-defined]
    assert len({r["port"] for r in server.requests}) == 1, "every request must reuse one keep-alive connection"
    assert client.is_closed and chat.backend._client is None  # type: ignore[attr-defined]


def test_load_backend_and_environment_defaults(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
    chat = Chat("openai:env-model", Memory(max_tokens=512, reserve_output=32))
    with chat:
        assert chat.send("from the environment").text == "echo: from the environment"
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert server.requests[0]["body"]["model"] == "env-model"
    assert isinstance(load_backend("openai:x", base_url="http://localhost:1/v1"), OpenAIBackend)


def test_no_key_sends_no_authorization(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAIBackend("m", base_url=server.url + "/v1") as b:
        b.complete([Message("user", "hi")])
    assert "authorization" not in {k.lower() for k in server.requests[0]["headers"]}


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"base_url": "localhost:8000"}, ValueError),
        ({"timeout": 0}, ValueError),
        ({"connect_timeout": -1}, ValueError),
        ({"api_key": 42}, TypeError),
        ({"retry": 3}, TypeError),
        ({"max_retries": -1}, ValueError),
        ({"tokenize": "sentencepiece"}, ValueError),
    ],
)
def test_bad_options_say_what_is_allowed(options: dict[str, object], error: type[Exception]) -> None:
    options.setdefault("base_url", "http://127.0.0.1:1/v1")
    with pytest.raises(error):
        OpenAIBackend("m", **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="model"):
        OpenAIBackend("", base_url="http://127.0.0.1:1/v1")


def test_reserved_and_empty_requests_are_refused(server: FakeLLMServer) -> None:
    with backend(server) as b:
        with pytest.raises(TypeError, match="model"):
            b.complete([Message("user", "x")], model="other")
        with pytest.raises(ValueError, match="at least one message"):
            b.complete([])
    assert server.requests == []


def test_retry_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="jitter"):
        Retry(jitter=2)
    with pytest.raises(ValueError, match="backoff"):
        Retry(backoff=-1)


def test_a_transport_given_is_the_one_used(server: FakeLLMServer) -> None:
    transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=1))
    with backend(server, transport=transport) as b:
        assert b.complete([Message("user", "through my transport")]).text == "echo: through my transport"
        assert b._client is not None and b._client._transport is transport
