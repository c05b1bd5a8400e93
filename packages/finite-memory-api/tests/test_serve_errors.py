"""Errors from ``finite-memory serve``: OpenAI-style bodies, the right statuses, and sessions left as they were."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from _serve_helpers import UPSTREAM_KEY, ServeUpstream

SESSION = "X-Finite-Memory-Session"


def post(proxy: Any, body: Any = None, *, session: str | None = "s1", raw: bytes | None = None) -> httpx.Response:
    headers = {SESSION: session} if session else {}
    if raw is not None:
        return httpx.post(proxy.url + "/v1/chat/completions", content=raw, headers=headers, timeout=30)
    return httpx.post(proxy.url + "/v1/chat/completions", json=body, headers=headers, timeout=30)


def error(response: httpx.Response) -> dict[str, Any]:
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]  # type: ignore[no-any-return]


def user(text: str) -> dict[str, Any]:
    return {"model": "test-model", "messages": [{"role": "user", "content": text}]}


def archived(proxy: Any, session: str = "s1") -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in proxy.proxy.store.messages(session)]


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_json"),
        (b'{"model": "m"}', "missing_messages"),
        (b'{"messages": []}', "missing_messages"),
        (b'{"messages": [{"role": "wizard", "content": "x"}]}', "invalid_value"),
        (b'{"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]}', "invalid_value"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 3}', "invalid_value"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "invalid_value"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', "invalid_value"),
        (b'{"messages": [{"role": "system", "content": "x"}]}', "invalid_value"),  # a session turn with no new message
    ],
)
def test_bad_requests_are_400_with_openai_error_bodies(
    make_proxy: Callable[..., Any], upstream: ServeUpstream, raw: bytes, code: str
) -> None:
    response = post(make_proxy(), raw=raw)
    assert response.status_code == 400
    assert error(response)["code"] == code
    assert upstream.count("/v1/chat/completions") == 0


def test_the_sdk_raises_bad_request_with_the_message(make_proxy: Callable[..., Any]) -> None:
    chat = openai.OpenAI(base_url=make_proxy().url + "/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="only text parts"):
        chat.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}],
        )


def test_unknown_routes_and_methods(make_proxy: Callable[..., Any]) -> None:
    proxy = make_proxy()
    missing = httpx.post(proxy.url + "/v1/embeddings", json={})
    assert missing.status_code == 404 and error(missing)["code"] == "unknown_url"
    wrong = httpx.get(proxy.url + "/v1/chat/completions")
    assert wrong.status_code == 405 and error(wrong)["code"] == "method_not_allowed"


def test_bodies_over_the_limit_are_413_declared_or_streamed(make_proxy: Callable[..., Any]) -> None:
    proxy = make_proxy(max_body_bytes=2000)
    big = user("x" * 5000)
    assert post(proxy, big).status_code == 413
    chunked = httpx.post(
        proxy.url + "/v1/chat/completions", content=iter([b'{"messages": [', b" " * 3000, b"]}"]), timeout=10
    )
    assert chunked.status_code == 413 and error(chunked)["code"] == "request_too_large"
    assert post(proxy, user("small")).status_code == 200


def test_an_upstream_failure_is_502_naming_the_upstream_status_and_leaves_the_session_unchanged(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy()
    assert post(proxy, user("kept")).status_code == 200
    before = archived(proxy)
    upstream.faults.append("500")
    response = post(proxy, user("lost"))
    assert response.status_code == 502
    body = error(response)
    assert "HTTP 500" in body["message"] and "the test server failed" in body["message"]
    assert upstream.url not in body["message"]  # the upstream's address stays private
    assert archived(proxy) == before
    post(proxy, user("next"))
    assert "lost" not in str(upstream.requests[-1]["body"]["messages"])


def test_upstream_request_errors_keep_their_status(make_proxy: Callable[..., Any], upstream: ServeUpstream) -> None:
    proxy = make_proxy()
    upstream.faults.append("400")
    response = post(proxy, user("x"))
    assert response.status_code == 400 and error(response)["code"] == "upstream_rejected"
    assert "HTTP 400" in error(response)["message"]
    upstream.faults.append("429:0")
    response = post(proxy, user("x"))
    assert response.status_code == 429 and "HTTP 429" in error(response)["message"]


def test_the_upstream_key_never_reaches_a_client_or_a_log(
    make_proxy: Callable[..., Any], upstream: ServeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    proxy = make_proxy()
    upstream.faults.append("401")  # the test server quotes the key it got, as some servers do
    response = post(proxy, user("x"))
    assert response.status_code == 502  # the proxy's own key failed: not the client's fault
    assert "HTTP 401" in error(response)["message"] and "***" in error(response)["message"]
    upstream.faults.append("401")
    streamed = post(proxy, {**user("x"), "stream": True})
    assert streamed.status_code == 502
    for text in (response.text, streamed.text, str(dict(response.headers)), caplog.text):
        assert UPSTREAM_KEY not in text


def test_an_upstream_timeout_is_504(make_proxy: Callable[..., Any], upstream: ServeUpstream) -> None:
    proxy = make_proxy(upstream_timeout=0.3)
    upstream.faults.append("slow:1.5")
    response = post(proxy, user("x"))
    assert response.status_code == 504 and error(response)["code"] == "upstream_timeout"
    assert archived(proxy) == []


def test_an_unreachable_upstream_is_502(make_proxy: Callable[..., Any], upstream: ServeUpstream) -> None:
    proxy = make_proxy()
    upstream.stop()
    response = post(proxy, user("x"))
    assert response.status_code == 502 and "connection failed" in error(response)["message"]
    models = httpx.get(proxy.url + "/v1/models")
    assert models.status_code == 502


def test_a_stream_cut_by_the_upstream_ends_in_an_error_event_and_archives_nothing(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy()
    upstream.faults.append("cut")
    chat = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, default_headers={SESSION: "s1"})
    stream = chat.chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": "one two three four five six"}], stream=True
    )
    with pytest.raises(openai.APIError, match="incomplete"):
        for _ in stream:
            pass
    assert archived(proxy) == []


def test_a_client_that_leaves_mid_stream_cancels_the_turn(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy()
    upstream.faults.append("stall:2")
    body = {**user("one two three four five six seven eight"), "stream": True}
    with httpx.stream("POST", proxy.url + "/v1/chat/completions", json=body, headers={SESSION: "s1"}) as response:
        assert response.status_code == 200
        next(response.iter_lines())  # the first event, then hang up
    wait_until(lambda: proxy.proxy.in_flight == 0)
    time.sleep(2.2)  # past the stall: a turn that was not cancelled would be archived by now
    assert archived(proxy) == []


def test_a_client_that_leaves_before_a_whole_reply_cancels_the_turn(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy()
    upstream.faults.append("slow:1")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url + "/v1/chat/completions", json=user("x"), headers={SESSION: "s1"}, timeout=0.3)
    wait_until(lambda: proxy.proxy.in_flight == 0)
    time.sleep(1.0)
    assert archived(proxy) == []
    assert post(proxy, user("again")).status_code == 200
    assert archived(proxy) == [("user", "again"), ("assistant", "echo: again")]


def test_a_second_turn_on_a_busy_session_waits_its_turn(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy()
    upstream.faults.append("slow:0.5")
    results: dict[str, int] = {}

    def send(text: str) -> None:
        results[text] = post(proxy, user(text)).status_code

    first = threading.Thread(target=send, args=("first",))
    first.start()
    wait_until(lambda: proxy.proxy.in_flight == 1)
    send("second")
    first.join()
    assert results == {"first": 200, "second": 200}
    assert archived(proxy) == [
        ("user", "first"),
        ("assistant", "echo: first"),
        ("user", "second"),
        ("assistant", "echo: second"),
    ]
    assert ("assistant", "echo: first") in [
        (m["role"], m["content"]) for m in upstream.requests[-1]["body"]["messages"]
    ]


def test_a_turn_that_waits_too_long_gets_409_and_the_sdk_retries_it(
    make_proxy: Callable[..., Any], upstream: ServeUpstream
) -> None:
    proxy = make_proxy(session_wait=0.2)
    upstream.faults.append("slow:1")
    first = threading.Thread(target=post, args=(proxy, user("first")))
    first.start()
    wait_until(lambda: proxy.proxy.in_flight == 1)
    busy = post(proxy, user("second"))
    assert busy.status_code == 409 and error(busy)["code"] == "session_busy"
    assert busy.headers["x-should-retry"] == "true" and int(busy.headers["retry-after"]) >= 1
    first.join()
    assert [m for m in archived(proxy) if m[0] == "user"] == [("user", "first")]

    upstream.faults.append("slow:1")
    first = threading.Thread(target=post, args=(proxy, user("third")))
    first.start()
    wait_until(lambda: proxy.proxy.in_flight == 1)
    sdk = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=2, default_headers={SESSION: "s1"})
    reply = sdk.chat.completions.create(model="m", messages=[{"role": "user", "content": "fourth"}])
    first.join()
    assert reply.choices[0].message.content == "echo: fourth"  # a 409, then the SDK's retry after Retry-After
    assert [m for m in archived(proxy) if m[0] == "user"] == [("user", "first"), ("user", "third"), ("user", "fourth")]


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
