"""``finite-memory serve`` driven by the official ``openai`` SDK: sessions, streams, tools, stateless mode."""

from __future__ import annotations

import asyncio
import gc
import json
import weakref
from collections.abc import Callable
from typing import Any

import httpx
import openai
from _serve_helpers import UPSTREAM_KEY, ServeUpstream

SESSION = "X-Finite-Memory-Session"


def client(proxy: Any, session: str | None = "s1", **kwargs: Any) -> openai.OpenAI:
    headers = {SESSION: session} if session else {}
    return openai.OpenAI(
        base_url=proxy.url + "/v1", api_key="client-key", max_retries=0, default_headers=headers, **kwargs
    )


def sent(upstream: ServeUpstream, index: int = -1) -> list[tuple[str, str]]:
    """(role, content) of the messages the upstream received in one request."""
    chats = [r for r in upstream.requests if r["path"] == "/v1/chat/completions"]
    return [(m["role"], m["content"] or "") for m in chats[index]["body"]["messages"]]


def test_a_session_remembers_earlier_turns_and_reports_its_figures(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    proxy = make_proxy()
    chat = client(proxy)
    first = chat.chat.completions.with_raw_response.create(
        model="test-model",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "I moved to Lisbon in May."}],
    )
    assert first.parse().choices[0].message.content == "echo: I moved to Lisbon in May."
    assert first.headers["x-finite-memory-archived"] == "3"  # system, user, assistant
    reply = chat.chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": "Where do I live?"}]
    )
    assert sent(upstream) == [
        ("system", "Be brief."),
        ("user", "I moved to Lisbon in May."),
        ("assistant", "echo: I moved to Lisbon in May."),
        ("user", "Where do I live?"),
    ]
    completion = reply.parse()
    usage = upstream.requests[-1]["body"]
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    assert reply.headers["x-finite-memory-archived"] == "5"
    assert int(reply.headers["x-finite-memory-context-tokens"]) > 0
    assert reply.headers["x-request-id"] == completion.id
    assert "x-finite-memory-cached-tokens" in reply.headers and usage["model"] == "test-model"


def test_the_upstream_key_is_sent_upstream_and_the_client_key_is_not(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    client(make_proxy()).chat.completions.create(model="test-model", messages=[{"role": "user", "content": "hi"}])
    headers = {k.lower(): v for k, v in upstream.requests[-1]["headers"].items()}
    assert headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "client-key" not in json.dumps(upstream.requests)
    assert SESSION.lower() not in headers  # the proxy's own header stays with the proxy


def test_cached_prompt_tokens_reach_the_header_and_the_usage(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    upstream.cached = 7
    reply = client(make_proxy()).chat.completions.with_raw_response.create(
        model="test-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.headers["x-finite-memory-cached-tokens"] == "7"
    usage = reply.parse().usage
    assert usage is not None and usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 7


def test_a_repeated_system_prompt_is_kept_once_and_a_new_one_is_archived(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    proxy = make_proxy()
    chat = client(proxy)
    for text in ("one", "two"):
        chat.chat.completions.create(
            model="test-model",
            messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}],
        )
    assert [m for m in sent(upstream) if m[0] == "system"] == [("system", "Be brief.")]
    chat.chat.completions.create(
        model="test-model",
        messages=[{"role": "developer", "content": "Be formal."}, {"role": "user", "content": "three"}],
    )
    assert sent(upstream)[0] == ("system", "Be formal.")  # the new prompt leads this turn's context
    memory = proxy.proxy.sessions._entries["s1"].memory
    assert [m.content for m in memory.messages if m.role == "system"] == ["Be brief.", "Be formal."]


def test_streamed_turns_with_the_sync_sdk(upstream: ServeUpstream, make_proxy: Callable[..., Any]) -> None:
    proxy = make_proxy()
    chat = client(proxy)
    stream = chat.chat.completions.create(
        model="test-model",
        messages=[{"role": "user", "content": "tell me about Lisbon"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "echo: tell me about Lisbon"
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finish] == ["stop"]
    assert finish[0].model_extra["finite_memory"]["archived"] == 2  # type: ignore[index]
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    chat.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "and now?"}])
    assert sent(upstream)[:2] == [("user", "tell me about Lisbon"), ("assistant", "echo: tell me about Lisbon")]


def test_no_usage_chunk_unless_the_client_asks(make_proxy: Callable[..., Any]) -> None:
    chunks = list(
        client(make_proxy()).chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)


def test_async_sdk_whole_and_streamed(upstream: ServeUpstream, make_proxy: Callable[..., Any]) -> None:
    proxy = make_proxy()

    async def main() -> list[str]:
        async with openai.AsyncOpenAI(
            base_url=proxy.url + "/v1", api_key="k", max_retries=0, default_headers={SESSION: "async"}
        ) as chat:
            whole = await chat.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "a"}])
            pieces = []
            stream = await chat.chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": "b c"}], stream=True
            )
            async for chunk in stream:
                pieces.append(chunk.choices[0].delta.content or "")
            return [whole.choices[0].message.content or "", "".join(pieces)]

    assert asyncio.run(main()) == ["echo: a", "echo: b c"]
    assert sent(upstream) == [("user", "a"), ("assistant", "echo: a"), ("user", "b c")]


def test_client_options_pass_through(upstream: ServeUpstream, make_proxy: Callable[..., Any]) -> None:
    chat = client(make_proxy(reserve_output=300))
    chat.chat.completions.create(
        model="other-model",
        messages=[{"role": "user", "content": "hi"}],
        temperature=0.3,
        max_tokens=42,
        seed=7,
        stop=["\n\n"],
        user="u-1",
    )
    body = upstream.requests[-1]["body"]
    assert body["model"] == "other-model"
    assert (body["temperature"], body["max_tokens"], body["seed"], body["stop"], body["user"]) == (
        0.3,
        42,
        7,
        ["\n\n"],
        "u-1",
    )
    chat.chat.completions.create(model="o1-mini", messages=[{"role": "user", "content": "x"}], max_completion_tokens=9)
    body = upstream.requests[-1]["body"]
    assert body["max_completion_tokens"] == 9 and "max_tokens" not in body
    chat.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "y"}])
    assert upstream.requests[-1]["body"]["max_tokens"] == 300  # no limit asked: the memory's reserve


WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def test_tool_calls_round_trip_through_a_session(upstream: ServeUpstream, make_proxy: Callable[..., Any]) -> None:
    proxy = make_proxy()
    chat = client(proxy)
    first = chat.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], tool_choice="auto"
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert first.choices[0].finish_reason == "tool_calls" and call.function.name == "get_weather"
    assert upstream.requests[-1]["body"]["tool_choice"] == "auto"
    answer = chat.chat.completions.create(
        model="test-model", messages=[{"role": "tool", "tool_call_id": call.id, "content": "18 C, sunny"}]
    )
    assert answer.choices[0].message.content == "The tool said: 18 C, sunny"
    body = upstream.requests[-1]["body"]["messages"]
    assert [m["role"] for m in body] == ["user", "assistant", "tool"]
    assert body[1]["tool_calls"][0]["id"] == call.id
    memory = proxy.proxy.sessions._entries["s1"].memory
    assert [m.role for m in memory.messages] == ["user", "assistant", "tool", "assistant"]
    assert len(memory.turns) == 1  # the tool result and the answer continue the user's turn


def test_streamed_tool_calls(upstream: ServeUpstream, make_proxy: Callable[..., Any]) -> None:
    chunks = list(
        client(make_proxy()).chat.completions.create(
            model="test-model", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], stream=True
        )
    )
    calls = [call for c in chunks if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in calls] == [  # type: ignore[union-attr,arg-type]
        ("call_1", "get_weather", {"city": "Lisbon"})
    ]
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


def test_a_tool_result_for_an_unknown_call_is_refused_before_any_upstream_call(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    chat = client(make_proxy())
    try:
        chat.chat.completions.create(
            model="test-model", messages=[{"role": "tool", "tool_call_id": "call_9", "content": "x"}]
        )
    except openai.BadRequestError as exc:
        assert "call_9" in str(exc)
    else:
        raise AssertionError("expected a 400")
    assert upstream.count("/v1/chat/completions") == 0


def test_stateless_requests_are_trimmed_to_the_budget_and_stored_nowhere(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    proxy = make_proxy(max_tokens=400, reserve_output=100)
    history: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for i in range(60):
        history.append({"role": "user", "content": f"question {i} about the weather in Lisbon and Oslo"})
        history.append({"role": "assistant", "content": f"answer {i}: it is mild and dry today"})
    history.append({"role": "user", "content": "and tomorrow?"})
    reply = client(proxy, session=None).chat.completions.with_raw_response.create(model="test-model", messages=history)
    forwarded = sent(upstream)
    assert forwarded[0] == ("system", "Be brief.") and forwarded[-1] == ("user", "and tomorrow?")
    assert 3 < len(forwarded) < 40
    assert forwarded[-3:-1] == [("user", history[-3]["content"]), ("assistant", history[-2]["content"])]
    assert int(reply.headers["x-finite-memory-context-tokens"]) <= 300
    assert "x-finite-memory-archived" not in reply.headers
    assert proxy.proxy.store.sessions() == [] and len(proxy.proxy.sessions) == 0


def test_models_are_listed_from_the_upstream(make_proxy: Callable[..., Any]) -> None:
    models = client(make_proxy()).models.list()
    assert [m.id for m in models.data] == ["test-model"]


def test_health(make_proxy: Callable[..., Any]) -> None:
    assert httpx.get(make_proxy().url + "/health").json() == {"status": "ok"}


def test_an_anthropic_upstream_behind_the_openai_protocol(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    proxy = make_proxy(backend="anthropic:claude-test", base_url=upstream.url)
    chat = client(proxy)
    first = chat.chat.completions.create(
        model="claude-test",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}],
        stop=["\n\n"],
        seed=3,  # an OpenAI-only field: not sent to Anthropic
    )
    assert first.choices[0].message.content == "echo: hello"
    body = upstream.requests[-1]["body"]
    assert upstream.requests[-1]["path"] == "/v1/messages"
    system = body["system"]  # a string, or text blocks (with a cache breakpoint)
    assert (system if isinstance(system, str) else "".join(block["text"] for block in system)) == "Be brief."
    assert body["stop_sequences"] == ["\n\n"] and "seed" not in body
    streamed = chat.chat.completions.create(
        model="claude-test", messages=[{"role": "user", "content": "weather?"}], tools=[WEATHER], stream=True
    )
    calls = [call for c in streamed if c.choices for call in c.choices[0].delta.tool_calls or ()]
    assert [c.function.name for c in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert [m["role"] for m in upstream.requests[-1]["body"]["messages"]] == ["user", "assistant", "user"]
    assert [m.id for m in chat.models.list().data] == ["test-model"]


def test_sessions_past_the_memory_limit_are_released_and_read_back(
    upstream: ServeUpstream, make_proxy: Callable[..., Any]
) -> None:
    proxy = make_proxy(max_cached_messages=5)
    for session in ("a", "b"):
        for text in ("one", "two"):
            client(proxy, session).chat.completions.create(
                model="test-model", messages=[{"role": "user", "content": f"{session} {text}"}]
            )
    sessions = proxy.proxy.sessions
    assert list(sessions._entries) == ["b"] and sessions.messages == 4  # "a" went: 8 messages were held
    client(proxy, "a").chat.completions.create(model="test-model", messages=[{"role": "user", "content": "a three"}])
    assert [m[1] for m in sent(upstream)] == ["a one", "echo: a one", "a two", "echo: a two", "a three"]
    assert list(sessions._entries) == ["a"] and sessions.messages == 6


def test_a_long_archive_is_frozen_out_of_the_collector_and_still_freed_when_released(
    tmp_path: Any, make_proxy: Callable[..., Any]
) -> None:
    from finite_memory import Message
    from finite_memory.stores.sqlite import SQLiteStore

    url = f"sqlite:///{tmp_path / 'long.db'}"
    store = SQLiteStore(url)
    store.append(
        "long", [Message("user" if i % 2 == 0 else "assistant", f"m{i}", id=i, turn=i // 2) for i in range(2000)]
    )
    store.close()
    proxy = make_proxy(store=url, max_sessions=1)
    try:
        before = gc.get_freeze_count()
        client(proxy, "long").chat.completions.create(model="test-model", messages=[{"role": "user", "content": "x"}])
        assert gc.get_freeze_count() > before + 2000
        held = weakref.ref(proxy.proxy.sessions._entries["long"].memory)
        client(proxy, "short").chat.completions.create(model="test-model", messages=[{"role": "user", "content": "y"}])
        assert list(proxy.proxy.sessions._entries) == ["short"]
        assert held() is None  # released and freed by reference counting, frozen or not
    finally:
        gc.unfreeze()
