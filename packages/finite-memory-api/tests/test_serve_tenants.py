"""Tenants of ``finite-memory serve``: client keys, namespaced sessions, and the keys file."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from _serve_helpers import ServeUpstream
from hypothesis import given, settings
from hypothesis import strategies as st

from finite_memory_api.serve._errors import ProxyError
from finite_memory_api.serve._tenants import RELOAD_INTERVAL, parse_keys, session_name

ALICE = "alice-key-0123456789abcdef"
BOB = "bob-key-fedcba9876543210xyz"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(f"# key tenant\n{ALICE} alice\n\n{BOB}   bob\n", encoding="utf-8")
    return path


def chat(proxy: Any, key: str, session: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=proxy.url + "/v1",
        api_key=key,
        max_retries=0,
        default_headers={"X-Finite-Memory-Session": session},
    )


def say(proxy: Any, key: str, session: str, text: str) -> str:
    reply = chat(proxy, key, session).chat.completions.create(
        model="test-model", messages=[{"role": "user", "content": text}]
    )
    return reply.choices[0].message.content or ""


def test_requests_need_a_known_key(make_proxy: Callable[..., Any], keys_file: Path) -> None:
    proxy = make_proxy(api_keys_file=str(keys_file))
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        say(proxy, "not-a-key-at-all-0000", "s", "hi")
    missing = httpx.post(proxy.url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 401 and missing.json()["error"]["code"] == "invalid_api_key"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert httpx.get(proxy.url + "/v1/models").status_code == 401
    assert httpx.get(proxy.url + "/v1/models", headers={"authorization": f"Bearer {BOB}"}).status_code == 200
    assert httpx.get(proxy.url + "/health").status_code == 200  # load balancers probe without a key
    assert say(proxy, ALICE, "s", "hi") == "echo: hi"


def test_one_tenant_never_reaches_another_tenants_session(
    make_proxy: Callable[..., Any], upstream: ServeUpstream, keys_file: Path
) -> None:
    proxy = make_proxy(api_keys_file=str(keys_file))
    say(proxy, ALICE, "chat", "alice's secret plan")
    for forged in ("chat", "alice/chat", "../alice/chat", "bob/../alice/chat", "alice"):
        say(proxy, BOB, forged, "what do you know?")
        assert "secret" not in str(upstream.requests[-1]["body"]["messages"]), forged
    sessions = proxy.proxy.store.sessions()
    assert all(name.startswith(("alice/", "bob/")) for name in sessions)
    assert [name for name in sessions if name.startswith("alice/")] == ["alice/chat"]
    say(proxy, ALICE, "chat", "and mine?")
    assert "secret" in str(upstream.requests[-1]["body"]["messages"])


def test_the_keys_file_is_reread_when_it_changes(make_proxy: Callable[..., Any], keys_file: Path) -> None:
    proxy = make_proxy(api_keys_file=str(keys_file))
    assert say(proxy, ALICE, "s", "hi") == "echo: hi"
    carol = "carol-key-00112233445566778899"
    keys_file.write_text(f"{carol} carol\n", encoding="utf-8")
    os.utime(keys_file, ns=(time.time_ns(), time.time_ns() + 10**9))
    time.sleep(RELOAD_INTERVAL + 0.1)
    assert say(proxy, carol, "s", "hi") == "echo: hi"
    with pytest.raises(openai.AuthenticationError):
        say(proxy, ALICE, "s", "hi")
    keys_file.write_text("half-written", encoding="utf-8")  # a bad edit keeps the keys in force
    time.sleep(RELOAD_INTERVAL + 0.1)
    assert say(proxy, carol, "s", "hi") == "echo: hi"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "holds no"),
        ("shortkey alice\n", "shorter than 16"),
        (f"{ALICE} alice extra\n", "expected 'KEY TENANT'"),
        (f"{ALICE} ali/ce\n", "tenant 'ali/ce'"),
        (f"{ALICE} alice\n{ALICE} bob\n", "line 2: the same key as line 1"),
    ],
)
def test_keys_file_errors_name_the_line_never_the_key(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem) as caught:
        parse_keys(text, "keys.txt")
    assert ALICE not in str(caught.value)


@settings(deadline=None)
@given(st.text(max_size=300))
def test_the_keys_parser_takes_any_text(text: str) -> None:
    try:
        keys = parse_keys(text, "keys.txt")
    except ValueError:
        return
    assert keys and all(len(digest) == 64 for digest in keys)


LINES = st.lists(
    st.tuples(
        st.text(alphabet="0123456789abcdef", min_size=1, max_size=24).map(lambda k: "KEY" + k),
        st.text(alphabet=st.characters(blacklist_categories=("Cc", "Zs", "Zl", "Zp")), max_size=12),
        st.sampled_from(["", " extra", "  more  fields"]),
    ),
    max_size=5,
)


@settings(deadline=None)
@given(LINES)
def test_no_key_ever_shows_in_a_keys_file_error(lines: list[tuple[str, str, str]]) -> None:
    text = "\n".join(f"{key} {tenant}{tail}" for key, tenant, tail in lines)
    try:
        parse_keys(text, "keys.txt")
    except ValueError as exc:
        assert not any(key in str(exc) for key, _, _ in lines)


@settings(deadline=None)
@given(st.text(min_size=1, max_size=300))
def test_no_session_id_escapes_its_tenant(session: str) -> None:
    try:
        name = session_name("alice", session)
    except ProxyError as exc:
        assert exc.status == 400
    else:
        assert name.partition("/")[0] == "alice" and name.partition("/")[2] == session
