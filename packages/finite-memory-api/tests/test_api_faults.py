"""Faults injected by the loopback server: retries, errors, broken streams, and a memory left intact."""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
import traceback

import pytest
from _api_chats import MODES, PROVIDERS, make_backend, make_chat, turn
from _api_server import KEY, FakeLLMServer

from finite_memory import BackendError, Chat, Memory, Message
from finite_memory_api import Retry

STREAMS = ("stream", "astream")
WHOLE = ("send", "asend")


def snapshot(chat: Chat) -> tuple[list[Message], list[Message]]:
    return chat.memory.messages, chat.memory.context().messages


def fail(chat: Chat, mode: str, caplog: pytest.LogCaptureFixture) -> BackendError:
    """Run a turn that must fail; check the memory is untouched and the key shows nowhere."""
    before = snapshot(chat)
    pieces: list[str] = []
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as info:  # httpx and httpcore too
        if mode == "stream":
            pieces.extend(chat.stream("half an answer please"))
        else:
            turn(chat, mode, "half an answer please")
    assert snapshot(chat) == before, "a failed turn must leave the memory as it was"
    assert not any(m.role == "assistant" and "half" in m.content for m in chat.memory.messages)
    exc = info.value
    for text in (
        str(exc),
        repr(exc),
        "".join(traceback.format_exception(exc)),
        repr(chat),
        repr(chat.backend),
        caplog.text,
    ):
        assert KEY not in text
    return exc


@pytest.fixture(autouse=True)
def _capture_retry_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="finite_memory_api")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_429_waits_for_retry_after_then_succeeds(server: FakeLLMServer, provider: str, mode: str) -> None:
    chat = make_chat(server, provider)
    server.faults = ["429:0.3"]
    started = time.perf_counter()
    assert turn(chat, mode, "hello") == "echo: hello"
    assert time.perf_counter() - started >= 0.3, "Retry-After must be honoured"
    assert len(server.requests) == 2 and chat.backend.retries == 1  # type: ignore[attr-defined]
    assert chat.last_reply is not None and chat.last_reply.stats["retries"] == 1
    assert [m.content for m in chat.memory.messages[-2:]] == ["hello", "echo: hello"]
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_500_then_success(server: FakeLLMServer, provider: str, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    chat = make_chat(server, provider)
    server.faults = ["500"]
    assert turn(chat, mode, "again") == "echo: again"
    assert len(server.requests) == 2
    assert f"HTTP 500 from {chat.backend.url}; retry 1/2" in caplog.text  # type: ignore[attr-defined]
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_retries_are_bounded(server: FakeLLMServer, provider: str, mode: str, caplog: pytest.LogCaptureFixture) -> None:
    chat = make_chat(server, provider)
    server.faults = ["503"] * 10
    exc = fail(chat, mode, caplog)
    assert exc.status == 503 and exc.retries == 2
    assert len(server.requests) == 3, "max_retries=2 means three requests in all"
    assert "the test server failed (503)" in str(exc) and "after 2 retries" in str(exc)
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_400_is_not_retried_and_its_message_reaches_the_user(
    server: FakeLLMServer, provider: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider)
    server.faults = ["400", "400"]
    exc = fail(chat, mode, caplog)
    assert exc.status == 400 and exc.retries == 0 and len(server.requests) == 1
    assert "Invalid 'messages': the test server refuses this request" in str(exc)
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_retry_after_too_long_ends_the_retries(
    server: FakeLLMServer, provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider)
    server.faults = ["429:3600"]
    exc = fail(chat, "send", caplog)
    assert exc.status == 429 and len(server.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_a_server_that_quotes_the_key_has_it_redacted(
    server: FakeLLMServer, provider: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider)
    server.faults = ["401"]
    exc = fail(chat, mode, caplog)
    assert exc.status == 401 and "Incorrect API key provided: ***" in str(exc)
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", STREAMS)
@pytest.mark.parametrize(
    ("fault", "says"),
    [
        ("cut", "incomplete"),
        ("drop", "the stream broke"),
        ("bad_sse", "malformed stream"),
        ("bad_chunk", "malformed stream"),
        ("stall:0.6", "the stream broke: timed out"),
        ("error_event", "the server sent an error mid-stream"),
    ],
)
def test_broken_streams_are_errors_never_short_answers(
    server: FakeLLMServer, provider: str, mode: str, fault: str, says: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider, timeout=0.3)
    turn(chat, "send", "a first turn that works")
    server.faults = [fault]
    exc = fail(chat, mode, caplog)
    assert says in str(exc)
    assert len(server.requests) == 2, "a stream that broke after it started is not retried"
    assert turn(chat, "send", "still usable") == "echo: still usable"
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_malformed_json_is_an_error(
    server: FakeLLMServer, provider: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider)
    server.faults = ["bad_json"]
    exc = fail(chat, mode, caplog)
    assert exc.status == 200 and len(server.requests) == 1, "the error carries the status the server sent"
    assert "malformed" in str(exc) and "not valid JSON" in str(exc)
    assert "this is not json" in str(exc), "and a snippet of what it sent"
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", MODES)
def test_a_slow_server_times_out_and_retries_are_bounded(
    server: FakeLLMServer, provider: str, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider, timeout=0.15, retry=Retry(max_retries=1, backoff=0.01))
    server.faults = ["slow:0.6", "slow:0.6"]
    started = time.perf_counter()
    exc = fail(chat, mode, caplog)
    assert time.perf_counter() - started < 1.5
    assert "timed out" in str(exc) and exc.retries == 1 and len(server.requests) == 2
    server.faults = ["slow:0.6"]
    assert turn(chat, mode, "patience") == "echo: patience", "a timeout is retried"
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_connection_refused_is_retried_then_reported(provider: str, caplog: pytest.LogCaptureFixture) -> None:
    with FakeLLMServer() as closed:  # bound then closed: nothing listens on its port afterwards
        pass
    chat = make_chat(closed, provider)
    exc = fail(chat, "send", caplog)
    assert "connection failed" in str(exc) and exc.retries == 2 and exc.status is None
    assert caplog.text.count("retry") == 2


def test_the_key_is_in_no_repr_log_or_checkpoint(
    server: FakeLLMServer, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    backend = make_backend(server, "openai")
    memory = Memory(max_tokens=512, reserve_output=32)
    with Chat(backend, memory) as chat, caplog.at_level(logging.DEBUG):
        server.faults = ["500"]
        chat.send("remember me")
    path = f"{tmp_path}/memory.json"
    memory.save(path)
    with open(path, encoding="utf-8") as f:
        assert KEY not in f.read()
    for text in (repr(backend), str(backend), repr(vars(backend)), repr(chat), caplog.text):
        assert KEY not in text
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(backend._key)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_an_error_sent_with_status_200_is_an_error(server: FakeLLMServer, provider: str) -> None:
    backend = make_backend(server, provider)
    server.faults = ["error_200"]
    with pytest.raises(BackendError, match="the server sent an error: overloaded"):
        backend.complete([Message("user", "x")])
    backend.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_async_calls_work_across_event_loops(server: FakeLLMServer, provider: str) -> None:
    chat = make_chat(server, provider)
    for i in range(3):  # a script calling asyncio.run once per turn, never closing in between
        assert asyncio.run(chat.asend(f"loop {i}")).text == f"echo: loop {i}"
    asyncio.run(chat.aclose())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_stream_closed_early_is_a_cancelled_turn(server: FakeLLMServer, provider: str) -> None:
    chat = make_chat(server, provider)
    pieces = chat.stream("one two three four")
    assert next(pieces) == "echo:"
    pieces.close()
    assert len(chat.memory) == 0 and chat.last_reply is None
    assert turn(chat, "send", "next") == "echo: next", "the backend stays usable"
    chat.close()
