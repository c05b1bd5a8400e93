"""The event-stream decoder and the retry schedule, on their own."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from finite_memory_api import Retry
from finite_memory_api._retry import RETRY_STATUSES, retry_after
from finite_memory_api._sse import Event, SSEDecoder


def decode(text: str) -> list[Event]:
    decoder = SSEDecoder()
    events = [decoder.feed(line) for line in text.split("\n")]
    assert not decoder.pending()
    return [e for e in events if e is not None]


def test_events_fields_comments_and_multiline_data() -> None:
    stream = (
        ': keep-alive\n\nevent: message_start\ndata: {"a": 1}\n\ndata: line one\ndata:line two\nid: 7\nretry: 100\n\n'
    )
    assert decode(stream) == [Event("message_start", '{"a": 1}'), Event("message", "line one\nline two")]


def test_a_line_that_is_no_field_is_an_error() -> None:
    decoder = SSEDecoder()
    with pytest.raises(ValueError, match="malformed event-stream line"):
        decoder.feed("this is not sse")
    with pytest.raises(ValueError, match="malformed"):
        decoder.feed("colour: blue")


def test_an_event_without_its_blank_line_is_pending() -> None:
    decoder = SSEDecoder()
    assert decoder.feed("data: [DONE]") is None
    assert decoder.pending()


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    retry = Retry(max_retries=6, backoff=0.5, max_backoff=4.0, jitter=0.5)
    for attempt in range(6):
        ceiling = min(4.0, 0.5 * 2**attempt)
        waits = [retry.delay(attempt) for _ in range(200)]
        assert all(w is not None and ceiling * 0.5 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 100, "jitter spreads the retries of many clients"
    assert retry.delay(6) is None
    assert Retry(jitter=0).delay(1) == 1.0


def test_retry_after_is_honoured_up_to_a_limit() -> None:
    retry = Retry(max_retries=2, max_retry_after=30)
    assert retry.delay(0, retry_after=12.5) == 12.5
    assert retry.delay(0, retry_after=31) is None
    assert retry.delay(2, retry_after=1) is None


def test_retry_after_headers() -> None:
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "-4"}) == 0.0
    assert retry_after({}) is None
    assert retry_after({"retry-after": "soon"}) is None
    in_ten = retry_after({"retry-after": formatdate(time.time() + 10, usegmt=True)})
    assert in_ten is not None and 8 <= in_ten <= 10
    assert retry_after({"retry-after-ms": "x", "retry-after": "2"}) == 2.0


def test_which_statuses_are_retried() -> None:
    assert {429, 500, 502, 503, 529} <= RETRY_STATUSES
    assert not {400, 401, 403, 404, 408, 409, 422} & RETRY_STATUSES
