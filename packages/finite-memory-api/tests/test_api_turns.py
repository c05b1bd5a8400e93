"""Whole turns against the loopback server: the tool loop, reasoning models, replies cut at their
length, context-length errors, prompt caching, and calibration that survives a restart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _api_chats import MODES, PROVIDERS, TOOLS, make_backend, make_chat, turn
from _api_server import FakeLLMServer

from finite_memory import ApproxTokenizer, Chat, ContextLengthError, Memory, Message
from finite_memory_api import AnthropicBackend, OpenAIBackend


def many_tools(n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": f"Tool number {i} looks up records about the subject in the archive of department {i}.",
                "parameters": {
                    "type": "object",
                    "properties": {"subject": {"type": "string"}, "year": {"type": "integer"}},
                },
            },
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_the_tool_loop_ends_without_a_user_message(server: FakeLLMServer, provider: str, mode: str) -> None:
    chat = make_chat(server, provider)
    turn(chat, mode, "What is the weather in Lisbon?", tools=TOOLS)
    reply = chat.last_reply
    assert reply is not None and reply.tool_calls and reply.finish_reason in ("tool_calls", "tool_use")
    call_id = reply.tool_calls[0]["id"]
    sent = len(server.requests)
    with pytest.raises(ValueError, match=call_id):  # a new user turn while the call is unanswered: never sent
        turn(chat, mode, "never mind that", tools=TOOLS)
    assert len(server.requests) == sent and len(chat.memory) == 2
    assert turn(chat, mode, None, tool_results={call_id: "18 C, sunny"}, tools=TOOLS) == "The tool said: 18 C, sunny"
    assert [m.role for m in chat.memory.messages] == ["user", "assistant", "tool", "assistant"]
    assert chat.memory.messages[-1].turn == chat.memory.messages[0].turn, "one turn: question, call, result, answer"
    body = server.requests[-1]["body"]
    last = body["messages"][-1]
    assert last.get("role") == "tool" or last["content"][-1]["type"] == "tool_result", "no user message was added"
    assert turn(chat, mode, "thanks") == "echo: thanks"
    chat.close()


def test_tool_results_must_answer_every_open_call(server: FakeLLMServer) -> None:
    chat = make_chat(server, "openai")
    calls = [{"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ("call_a", "call_b")]
    chat.memory.extend([Message("user", "two lookups"), Message("assistant", "", tool_calls=calls)])
    with pytest.raises(ValueError, match="call_b"):
        chat.send(tool_results={"call_a": "1"})
    with pytest.raises(ValueError, match="call_z answer no open tool call"):
        chat.send(tool_results={"call_a": "1", "call_b": "2", "call_z": "3"})
    with pytest.raises(ValueError, match="needs text"):
        chat.send()
    assert server.requests == [] and len(chat.memory) == 2
    chat.memory.add("tool", "1", tool_call_id="call_a")  # results added by hand, then "ask again"
    chat.memory.add("tool", "2", tool_call_id="call_b")
    assert chat.send().text == "The tool said: 2"
    assert [m.role for m in chat.memory.messages[-3:]] == ["tool", "tool", "assistant"]


def test_reasoning_models_get_max_completion_tokens_and_report_reasoning(server: FakeLLMServer) -> None:
    memory = Memory(max_tokens=1024, reserve_output=64)
    with Chat(OpenAIBackend("o3-mini", base_url=server.url + "/v1"), memory) as chat:
        reply = chat.send("think about it")
    body = server.requests[-1]["body"]
    assert body["max_completion_tokens"] == 64 and "max_tokens" not in body
    assert reply.usage["reasoning_tokens"] == 7 and reply.stats["reasoning_tokens"] == 7
    assert OpenAIBackend("gpt-5.1", base_url="http://127.0.0.1:1/v1").max_completion_tokens
    assert not OpenAIBackend("gpt-4o-mini", base_url="http://127.0.0.1:1/v1").max_completion_tokens
    assert OpenAIBackend("gpt-4o", base_url="http://127.0.0.1:1/v1", max_completion_tokens=True).max_completion_tokens
    forced = Chat(OpenAIBackend("o1", base_url=server.url + "/v1", max_completion_tokens=False), Memory())
    with pytest.raises(Exception, match="max_completion_tokens"):
        forced.send("x")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_a_reply_cut_at_its_length_is_archived_with_the_mark(server: FakeLLMServer, provider: str, mode: str) -> None:
    chat = make_chat(server, provider)
    assert turn(chat, mode, "one two three four five six", max_new_tokens=3) == "echo: one two"
    reply = chat.last_reply
    assert reply is not None and reply.cut_off and reply.finish_reason in ("length", "max_tokens")
    assert chat.memory.messages[-1].meta == {"finish_reason": reply.finish_reason}
    turn(chat, mode, "short")
    assert chat.last_reply is not None and not chat.last_reply.cut_off and chat.memory.messages[-1].meta == {}


def fill(memory: Memory, turns: int) -> None:
    for i in range(turns):
        memory.extend(
            [Message("user", f"fact {i}: the archive holds record number {i * 7}."), Message("assistant", f"noted {i}")]
        )


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_a_context_length_error_shrinks_the_context_and_retries_once(
    server: FakeLLMServer, provider: str, mode: str
) -> None:
    chat = make_chat(server, provider)
    fill(chat.memory, 40)
    chat.memory.tokenizer.calibrate(chat.memory.context().messages, chat.memory.context().tokens)  # type: ignore[attr-defined]
    server.context_limit = 300  # the model's window is smaller than the memory's budget
    assert turn(chat, mode, "what was fact 39?") == "echo: what was fact 39?"
    assert len(server.requests) == 2, "refused once, then sent smaller"
    assert chat.last_reply is not None and chat.last_reply.stats["context_retries"] == 1
    assert chat.last_reply.usage["prompt_tokens"] <= 300
    turn(chat, mode, "and fact 38?")
    assert len(server.requests) == 3, "the next turn fits at once: the window was learned"
    before = chat.memory.messages
    server.context_limit = 5  # nothing fits: no pointless retry, the error reaches the caller, the memory is unchanged
    with pytest.raises(ContextLengthError) as info:
        turn(chat, mode, "fact 37?")
    assert info.value.limit == 5 and info.value.prompt_tokens and chat.memory.messages == before
    assert len(server.requests) == 4
    server.context_limit = None
    server.faults = ["too_long", "too_long"]  # refused, shrunk by a step, refused again: the caller hears of it
    with pytest.raises(ContextLengthError, match=r"exceeded|too long"):
        turn(chat, mode, "fact 36?")
    assert chat.memory.messages == before and len(server.requests) == 6


def test_openai_reports_cached_prompt_tokens_per_turn_and_per_session(server: FakeLLMServer) -> None:
    memory = Memory(max_tokens=2048, reserve_output=64, system="You are a careful assistant.", session="alice")
    backend = OpenAIBackend("m", base_url=server.url + "/v1", prompt_cache_key=True)
    with Chat(backend, memory) as chat:
        first = chat.send("hello there")
        second = chat.send("and again")
    assert first.stats["cached_prompt_tokens"] == 0
    assert second.stats["cached_prompt_tokens"] > 0
    assert (
        second.stats["cached_prompt_tokens"] + second.stats["uncached_prompt_tokens"] == second.usage["prompt_tokens"]
    )
    total = first.usage["prompt_tokens"] + second.usage["prompt_tokens"]
    assert second.stats["session_prompt_tokens"] == total
    assert second.stats["session_cache_rate"] == pytest.approx(second.stats["cached_prompt_tokens"] / total)
    keys = {r["body"]["prompt_cache_key"] for r in server.requests}
    assert len(keys) == 1 and "alice" not in keys.pop(), "one key per session, a hash of its name"


def test_anthropic_places_cache_breakpoints_at_the_system_prompt_and_the_stable_prefix(server: FakeLLMServer) -> None:
    backend = AnthropicBackend("claude-test", base_url=server.url)
    messages = [
        Message("system", "Be brief."),
        Message("user", "pinned question"),
        Message("assistant", "pinned answer"),
        Message("user", "new question"),
    ]
    backend.complete(messages, stable_prefix=3)
    body = server.requests[-1]["body"]
    assert body["system"][-1]["cache_control"] == {"type": "ephemeral"}
    assert body["messages"][1]["content"][-1] == {
        "type": "text",
        "text": "pinned answer",
        "cache_control": {"type": "ephemeral"},
    }
    assert "cache_control" not in json.dumps(body["messages"][2])
    AnthropicBackend("claude-test", base_url=server.url, cache_control=False).complete(messages, stable_prefix=3)
    assert "cache_control" not in json.dumps(server.requests[-1]["body"])
    chat = make_chat(server, "anthropic")
    chat.send("one")
    reply = chat.send("two")
    assert reply.stats["cached_prompt_tokens"] > 0, "the system prompt was read from the cache"


def test_calibration_is_kept_with_the_session_in_sqlite(server: FakeLLMServer, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/chats.db"
    with Memory(max_tokens=1024, reserve_output=64, store=url, session="s") as memory:
        with Chat(make_backend(server, "openai"), memory) as chat:
            first = chat.send("a first question about the archive")
            for i in range(4):
                chat.send(f"question {i} about the records of the archive")
        saved = memory.tokenizer.state()  # type: ignore[attr-defined]
    assert first.stats["budget"] == 960 // 2, "an uncalibrated first turn fills half the budget"
    with Memory(max_tokens=1024, reserve_output=64, store=url, session="s") as again:
        assert isinstance(again.tokenizer, ApproxTokenizer) and again.tokenizer.state() == saved
        with Chat(make_backend(server, "openai"), again) as chat:
            assert chat.send("after the restart").stats["budget"] == 960, "calibrated: the whole budget"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_tool_schemas_are_budgeted_once_and_kept_out_of_the_calibration(server: FakeLLMServer, provider: str) -> None:
    def chat() -> Chat:
        return Chat(make_backend(server, provider), Memory(max_tokens=4096, reserve_output=64, system="Be brief."))

    plain, tooled = chat(), chat()
    fill(plain.memory, 30)
    fill(tooled.memory, 30)
    tools = many_tools(10)
    for i in range(6):
        plain.send(f"question {i}")
        tooled.send(f"question {i}", tools=tools, tool_choice="none")
    scale, with_tools = plain.memory.tokenizer.scale, tooled.memory.tokenizer.scale  # type: ignore[attr-defined]
    # the server's rule spends a token on every punctuation mark, so its JSON costs 1.8x its prose per
    # character: the fit over conversation and schemas lands between the two, it never runs away
    json_ratio = 1161 / (2630 / 4)  # this server's count of the ten schemas over their characters / 4
    assert scale * 0.95 <= with_tools <= json_ratio, "ten tool schemas are counted, not read as conversation"
    assert len({text for text, _ in tooled._overheads}) == 1, "one count per set of tools (and calibration)"
    for reply in (tooled.last_reply, plain.last_reply):
        assert reply is not None and reply.usage["prompt_tokens"] <= tooled.memory.budget, "schemas and context fit"
    assert tooled.last_reply is not None and tooled.last_reply.stats["request_tokens"] > 600
