"""The anthropic backend against a real loopback server: message mapping, tools, streaming."""

from __future__ import annotations

import json

import pytest
from _api_chats import TOOLS
from _api_server import KEY, FakeLLMServer, anthropic_prompt_tokens, anthropic_system

from finite_memory import Chat, Completion, Memory, Message
from finite_memory._provider_messages import to_anthropic
from finite_memory_api import AnthropicBackend
from finite_memory_api.anthropic import _tool, _tool_choice


def backend(server: FakeLLMServer, **options: object) -> AnthropicBackend:
    return AnthropicBackend("claude-test", base_url=server.url, api_key=KEY, **options)  # type: ignore[arg-type]


def test_messages_map_to_system_blocks_tool_use_and_tool_result() -> None:
    call = {"id": "toolu_9", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Porto"}'}}
    messages = [
        Message("system", "Be brief."),
        Message("system", "Answer in English."),
        Message("user", "Weather?"),
        Message("assistant", "Let me look.", tool_calls=[call]),
        Message("tool", "21 C", tool_call_id="toolu_9"),
        Message("user", "Thanks"),
    ]
    request = to_anthropic(messages)
    assert request["system"] == "Be brief.\n\nAnswer in English."
    assert request["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_9", "name": "get_weather", "input": {"city": "Porto"}},
            ],
        },
        {
            "role": "user",  # the tool result and the next user message merge into one user turn
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_9", "content": "21 C"},
                {"type": "text", "text": "Thanks"},
            ],
        },
    ]


def test_complete_sends_headers_max_tokens_and_reads_usage(server: FakeLLMServer) -> None:
    with backend(server, max_tokens=77) as b:
        done = b.complete([Message("system", "Be brief."), Message("user", "Hello there")], temperature=0.5)
    request = server.requests[0]
    assert request["path"] == "/v1/messages"
    assert request["headers"]["x-api-key"] == KEY and request["headers"]["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {k.lower() for k in request["headers"]}
    body = request["body"]
    assert body["max_tokens"] == 77 and body["temperature"] == 0.5
    assert body["system"] == [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    assert done.text == "echo: Hello there" and done.finish_reason == "end_turn"
    assert done.usage["prompt_tokens"] == anthropic_prompt_tokens(body)
    assert done.usage["total_tokens"] == done.usage["prompt_tokens"] + done.usage["completion_tokens"]


def test_max_new_tokens_overrides_the_default(server: FakeLLMServer) -> None:
    with backend(server) as b:
        b.complete([Message("user", "x")], max_new_tokens=12)
    assert server.requests[0]["body"]["max_tokens"] == 12
    with pytest.raises(ValueError, match="max_tokens"):
        AnthropicBackend("m", base_url=server.url, max_tokens=0)


def test_stream_assembles_text_and_usage(server: FakeLLMServer) -> None:
    with backend(server) as b:
        *pieces, done = b.stream([Message("user", "one two")])
    assert pieces == ["echo:", " one", " two"]
    assert isinstance(done, Completion) and done.text == "echo: one two" and done.finish_reason == "end_turn"
    assert done.usage["prompt_tokens"] == anthropic_prompt_tokens(server.requests[0]["body"])
    assert done.usage["completion_tokens"] > 0


async def test_async_stream_and_complete(server: FakeLLMServer) -> None:
    async with backend(server) as b:
        pieces = [p async for p in b.astream([Message("user", "x y")])]
        done = await b.acomplete([Message("user", "z")])
    assert pieces[:-1] == ["echo:", " x", " y"] and done.text == "echo: z"


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_use_round_trips_through_messages(server: FakeLLMServer, streamed: bool) -> None:
    memory = Memory(max_tokens=1024, reserve_output=64, system="You can call tools.")
    with Chat(backend(server), memory) as chat:
        if streamed:
            list(chat.stream("Weather in Lisbon?", tools=TOOLS, tool_choice="auto"))
            reply = chat.last_reply
            assert reply is not None
        else:
            reply = chat.send("Weather in Lisbon?", tools=TOOLS, tool_choice="auto")
        assert reply.tool_calls is not None
        (call,) = reply.tool_calls
        assert call["id"] == "toolu_1" and call["function"]["name"] == "get_weather"
        assert json.loads(call["function"]["arguments"]) == {"city": "Lisbon"}
        sent = server.requests[-1]["body"]
        assert sent["tools"] == [
            {
                "name": "get_weather",
                "input_schema": TOOLS[0]["function"]["parameters"],  # type: ignore[index]
                "description": "The weather in a city",
            }
        ]
        assert sent["tool_choice"] == {"type": "auto"}
        memory.add("tool", "18 C, sunny", tool_call_id=call["id"])
        final = chat.send("Thanks")
    turns = server.requests[-1]["body"]["messages"]
    assert turns[1]["content"][0] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "get_weather",
        "input": {"city": "Lisbon"},
    }
    assert turns[2]["content"][0] == {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18 C, sunny"}
    assert anthropic_system(server.requests[-1]["body"]) == "You can call tools."
    assert final.text == "echo: Thanks"


def test_environment_defaults(server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
    with Chat("anthropic:claude-env", Memory(max_tokens=512, reserve_output=32)) as chat:
        assert chat.send("hi").text == "echo: hi"
    assert server.requests[0]["headers"]["x-api-key"] == KEY


def test_openai_tool_choices_and_tools_convert_and_others_pass() -> None:
    assert _tool_choice("auto") == {"type": "auto"} and _tool_choice("none") == {"type": "none"}
    assert _tool_choice("required") == {"type": "any"}
    assert _tool_choice({"type": "function", "function": {"name": "f"}}) == {"type": "tool", "name": "f"}
    assert _tool_choice({"type": "any"}) == {"type": "any"}
    native = {"name": "f", "input_schema": {"type": "object"}}
    assert _tool(native) is native
    assert _tool({"type": "function", "function": {"name": "g"}}) == {"name": "g", "input_schema": {"type": "object"}}
