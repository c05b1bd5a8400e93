"""``finite-memory serve`` in front of a real model server: ``transformers serve`` with a tiny local model.

The model (random weights, a tokenizer trained in the test) is built on disk and
served on 127.0.0.1; nothing is downloaded. Its replies are noise: the test checks the
mechanics (turns reach the model, sessions grow and stay within the budget), not the
words.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import pytest
from _serve_helpers import ThreadProxy
from _transformers_serve import Served

pytest.importorskip("fastapi", reason="transformers serve needs transformers[serving]")

MAX_TOKENS, RESERVE = 320, 32
TURNS = 10
SESSION = "X-Finite-Memory-Session"


@pytest.fixture
def proxy(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    url, model = served.url, str(served.model)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with ThreadProxy(url, backend=f"openai:{model}", max_tokens=MAX_TOKENS, reserve_output=RESERVE) as running:
        yield running


def sdk(proxy: Any, session: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0, default_headers={SESSION: session})


def test_sessions_through_a_real_model_server_keep_their_turns_within_the_budget(proxy: Any, served: Served) -> None:
    model = str(served.model)
    chat = sdk(proxy, "real")
    used = []
    for turn in range(TURNS):
        raw = chat.chat.completions.with_raw_response.create(
            model=model,
            messages=[{"role": "user", "content": f"turn {turn}: tell me about the city of Lisbon and my dog"}],
            max_tokens=8,
            temperature=0,
        )
        reply = raw.parse()
        assert reply.usage is not None and reply.choices[0].finish_reason in ("stop", "length")
        used.append(reply.usage.prompt_tokens)
        assert int(raw.headers["x-finite-memory-archived"]) == 2 * (turn + 1)
    assert used[1] > used[0]  # the second prompt holds the first turn
    assert max(used) <= MAX_TOKENS - RESERVE  # counted by the model's own tokenizer, on its own server
    assert used[-1] > 0.5 * (MAX_TOKENS - RESERVE)  # the memory fills the budget rather than starving the prompt
    memory = proxy.proxy.sessions._entries["real"].memory
    assert len(memory) == 2 * TURNS and len(memory.context().messages) < 2 * TURNS  # older turns were left out


def test_the_async_sdk_and_models_through_a_real_model_server(proxy: Any, served: Served) -> None:
    model = str(served.model)

    async def main() -> str:
        async with openai.AsyncOpenAI(
            base_url=proxy.url + "/v1", api_key="k", max_retries=0, default_headers={SESSION: "async"}
        ) as chat:
            first = await chat.chat.completions.create(
                model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=4
            )
            return first.choices[0].message.content or ""

    text = asyncio.run(main())
    memory = proxy.proxy.sessions._entries["async"].memory
    assert [m.content for m in memory.messages] == ["hello", text]
    assert model in [m.id for m in sdk(proxy, "x").models.list().data]


def test_streamed_turns_through_a_real_model_server(proxy: Any, served: Served) -> None:
    model = str(served.model)
    chunks = list(
        sdk(proxy, "streamed").chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=6, stream=True
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    memory = proxy.proxy.sessions._entries["streamed"].memory
    assert [m.content for m in memory.messages] == ["hello", text]
