"""Hostile servers and leaky inputs: limits on what a server may send, and one redaction filter.

A server on 127.0.0.1 sends oversized bodies, a gzip bomb, an endless stream, a drip, a
redirect; keys arrive with trailing newlines or in the URL. Every case ends in a
``BackendError`` that names the limit, within bounded memory and time, with no secret in
any message, log record, repr or exception chain.
"""

from __future__ import annotations

import logging
import time
import traceback
import tracemalloc

import httpx
import pytest
from _api_chats import PROVIDERS, make_backend, make_chat, turn
from _api_server import KEY, FakeLLMServer

from finite_memory import BackendError, Message
from finite_memory_api import AnthropicBackend, Limits, OpenAIBackend, Retry
from finite_memory_api._redact import redact, snippet

SMALL = Limits(max_response_bytes=1 << 20, max_line_bytes=1 << 16, deadline=2.0)


def chain(exc: BaseException) -> str:
    """Everything an exception carries: message, repr, traceback, and its causes' and contexts' reprs."""
    texts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    seen = exc.__cause__ or exc.__context__
    while seen is not None:
        texts += [repr(seen), repr(vars(seen)) if hasattr(seen, "__dict__") else ""]
        request = getattr(seen, "_request", None)
        if request is not None:
            texts.append(repr(request.headers.raw))
        seen = seen.__cause__ or seen.__context__
    return "\n".join(texts)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(
    ("fault", "mode", "says"),
    [
        ("big_body", "send", "max_response_bytes"),
        ("big_error", "send", "HTTP 500"),
        ("gzip_bomb", "send", "max_response_bytes"),
        ("long_line", "stream", "max_line_bytes"),
        ("endless", "stream", "max_stream_tokens"),
        ("drip", "stream", "deadline"),
    ],
)
def test_what_a_server_sends_is_bounded(server: FakeLLMServer, provider: str, fault: str, mode: str, says: str) -> None:
    chat = make_chat(server, provider, limits=SMALL, retry=Retry(max_retries=0))
    server.faults = [fault]
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(BackendError, match=says) as info:
            turn(chat, mode, "hello", max_new_tokens=16)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 4.0, "the deadline bounds the whole turn"
    assert peak < 16 << 20, f"peak {peak / 2**20:.1f} MiB for a 1 MiB limit (a 64 MiB-1 GiB reply)"
    assert len(chat.memory) == 0 and KEY not in chain(info.value)
    if fault == "big_error":
        assert len(str(info.value)) < 1000, "an error body is cut to a snippet"
    chat.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_redirect_is_not_success_and_not_followed(server: FakeLLMServer, provider: str) -> None:
    chat = make_chat(server, provider)
    server.faults = ["redirect"]
    with pytest.raises(BackendError, match=r"HTTP 302.*not followed") as info:
        chat.send("hello")
    assert info.value.status == 302 and len(server.requests) == 1 and len(chat.memory) == 0


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["stream", "astream"])
def test_a_stream_is_complete_at_its_finish_reason_without_a_terminator(
    server: FakeLLMServer, provider: str, mode: str
) -> None:
    chat = make_chat(server, provider)
    server.faults = ["no_done"]
    assert turn(chat, mode, "no terminator here") == "echo: no terminator here"
    assert chat.last_reply is not None and chat.last_reply.usage["prompt_tokens"] > 0
    assert chat.last_reply.finish_reason in ("stop", "end_turn")


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("suffix", ["\n", "\r\n", "\x00", " ", "\t\n"])
def test_a_key_read_with_trailing_whitespace_works_and_never_shows(
    server: FakeLLMServer, provider: str, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    chat = make_chat(server, provider)
    if provider == "openai":
        backend = OpenAIBackend("test-model", base_url=server.url + "/v1", api_key=KEY + suffix)
    else:
        backend = AnthropicBackend("claude-test", base_url=server.url, api_key=KEY + suffix)
    chat.backend = backend
    server.faults = ["401"]
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as info:
        chat.send("hello")
    assert "***" in str(info.value)
    sent = {k.lower(): v for k, v in server.requests[-1]["headers"].items()}
    assert sent.get("authorization") == f"Bearer {KEY}" or sent.get("x-api-key") == KEY, "the key is sent stripped"
    for text in (chain(info.value), caplog.text, repr(backend), repr(vars(backend))):
        assert KEY not in text
    assert chat.send("again").text == "echo: again"


@pytest.mark.parametrize("key", ["sk-abc\ndef-0123456789", "sk-\u00e9t\u00e9-0123456789", "sk-0123456789\x01x"])
def test_a_key_no_header_can_carry_is_refused_locally_without_showing_it(key: str) -> None:
    with pytest.raises(ValueError, match="cannot carry") as info:
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", api_key=key)
    assert key not in str(info.value) and key[:8] not in str(info.value)


def test_a_bad_extra_header_is_refused_at_construction_not_retried_as_a_network_fault() -> None:
    with pytest.raises(ValueError, match=r"X-Token.*position 5$"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", headers={"X-Token": "abcde\nfghij-secret"})
    with pytest.raises(ValueError, match="not a valid HTTP token"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", headers={"Bad Name": "v"})


def test_credentials_in_base_url_are_sent_as_basic_auth_and_never_shown(
    server: FakeLLMServer, caplog: pytest.LogCaptureFixture
) -> None:
    password = "hunter2-very-secret-pw"
    url = server.url.replace("http://", f"http://alice:{password}@") + "/v1"
    backend = OpenAIBackend("m", base_url=url, retry=Retry(max_retries=1, backoff=0.01))
    assert password not in repr(backend) and "alice" not in repr(backend)
    assert backend.complete([Message("user", "hi")]).text == "echo: hi"
    sent = {k.lower(): v for k, v in server.requests[-1]["headers"].items()}
    assert sent["authorization"].startswith("Basic ")
    server.faults = ["500", "401"]
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as info:
        backend.complete([Message("user", "hi")])
    for text in (chain(info.value), caplog.text, repr(vars(backend))):
        assert password not in text
    backend.close()


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_exception_chain_carries_the_request_headers(provider: str, caplog: pytest.LogCaptureFixture) -> None:
    with FakeLLMServer() as closed:  # nothing listens there afterwards
        pass
    backend = make_backend(closed, provider, retry=Retry(max_retries=1, backoff=0.01))
    with caplog.at_level(logging.DEBUG), pytest.raises(BackendError) as info:
        backend.complete([Message("user", "x")])
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert KEY not in chain(info.value) + caplog.text


def test_a_body_quoting_the_key_at_the_cut_shows_no_prefix() -> None:
    key = "sk-cut-0123456789abcdefghij"
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", api_key=key)
    body = "x" * 290 + key + " tail"
    shown = snippet(body, 300)
    assert "sk-cut" not in shown and key[:5] not in shown[-12:]
    assert redact(f"Bearer {key}") == "Bearer ***"
    del backend


def test_short_placeholder_keys_do_not_garble_messages(server: FakeLLMServer) -> None:
    backend = OpenAIBackend("m", base_url=server.url + "/v1", api_key="x")
    server.faults = ["400"]
    with pytest.raises(BackendError) as info:
        backend.complete([Message("user", "x")])
    assert "Invalid 'messages': the test server refuses this request" in str(info.value)
    backend.close()
    assert redact("the ollama server at localhost") == "the ollama server at localhost"


def test_redaction_covers_unregistered_credentials_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", api_key="sk-registered-0123456789")
    with caplog.at_level(logging.INFO, logger="finite_memory_api"):
        logging.getLogger("finite_memory_api").info(
            "calling %s with %s", "http://bob:pw-1234567@h/v1", {"x-api-key": "unregistered-secret-value"}
        )
        logging.getLogger("httpx").info("key sk-registered-0123456789 seen")
    assert "pw-1234567" not in caplog.text and "unregistered-secret-value" not in caplog.text
    assert "sk-registered-0123456789" not in caplog.text


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0, -1])
def test_timeouts_must_be_finite(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", timeout=value)
    with pytest.raises(ValueError):
        Limits(deadline=value)


def test_limits_are_checked() -> None:
    for bad in ({"max_response_bytes": 0}, {"max_line_bytes": 1.5}, {"max_stream_tokens": -1}):
        with pytest.raises(ValueError):
            Limits(**bad)  # type: ignore[arg-type]
    assert Limits().stream_cap(100) == 1056 and Limits(max_stream_tokens=5).stream_cap(100) == 5
    with pytest.raises(TypeError, match="limits"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", limits={"deadline": 3})  # type: ignore[arg-type]


def test_nan_in_a_request_option_is_refused_before_sending(server: FakeLLMServer) -> None:
    backend = OpenAIBackend("m", base_url=server.url + "/v1")
    with pytest.raises(ValueError, match="not valid JSON"):
        backend.complete([Message("user", "x")], top_p=float("nan"))
    assert server.requests == []


def test_a_mock_transport_reply_reads_like_a_network_one() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"choices": [{"message": {"content": "ok"}}]}))
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", transport=transport)
    assert backend.complete([Message("user", "x")]).text == "ok"


def test_a_body_that_does_not_decompress_is_an_error_and_a_500_of_it_is_still_retried() -> None:
    replies = [
        httpx.Response(500, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"not gzip at all")),
        httpx.Response(200, json={"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}]}),
        httpx.Response(200, headers={"content-encoding": "gzip"}, stream=httpx.ByteStream(b"\x1f\x8b broken")),
    ]
    transport = httpx.MockTransport(lambda request: replies.pop(0))
    backend = OpenAIBackend("m", base_url="http://127.0.0.1:1/v1", transport=transport, retry=Retry(backoff=0.01))
    assert backend.complete([Message("user", "x")]).text == "fine", "the 500 was retried despite its bad gzip"
    with pytest.raises(BackendError, match="does not decompress") as info:
        backend.complete([Message("user", "x")])
    assert info.value.status == 200 and not replies
