"""Whatever a client sends, the request parser answers a ``ChatRequest`` or a 400, never another error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from finite_memory_api.serve._errors import ProxyError
from finite_memory_api.serve._request import ChatRequest, parse_chat_request

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function", "", None])
MESSAGE = st.fixed_dictionaries(
    {"role": ROLES},
    optional={
        "content": st.none() | st.text(max_size=30) | st.lists(JSON, max_size=3),
        "name": JSON,
        "tool_calls": JSON,
        "tool_call_id": JSON,
    },
)
BODY = st.fixed_dictionaries(
    {"messages": st.lists(MESSAGE, max_size=4) | JSON},
    optional={
        "model": JSON,
        "stream": JSON,
        "stream_options": JSON,
        "temperature": JSON,
        "max_tokens": JSON,
        "max_completion_tokens": JSON,
        "n": JSON,
        "tools": JSON,
    },
)


def parsed_or_400(raw: bytes, scheme: str) -> ChatRequest | None:
    try:
        return parse_chat_request(raw, scheme)
    except ProxyError as exc:
        assert exc.status == 400 and exc.body()["error"]["message"]
        return None


@settings(max_examples=200, deadline=None)  # timing is not the point: CI machines are shared
@given(BODY, st.sampled_from(["openai", "anthropic"]))
def test_any_request_shape_is_parsed_or_refused_with_400(body: dict[str, Any], scheme: str) -> None:
    request = parsed_or_400(json.dumps(body).encode(), scheme)
    if request is not None:
        assert request.messages and isinstance(request.stream, bool)
        assert not {"messages", "model", "stream", "n"} & request.options.keys()


@settings(deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_are_parsed_or_refused_with_400(raw: bytes) -> None:
    parsed_or_400(raw, "openai")


def test_deeply_nested_json_is_a_400() -> None:
    assert parsed_or_400(b"[" * 100_000 + b"]" * 100_000, "openai") is None
