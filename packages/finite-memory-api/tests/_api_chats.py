"""Building chats on the loopback server, and running one turn in any of the four modes."""

from __future__ import annotations

import asyncio
from typing import Any

from _api_server import KEY, FakeLLMServer

from finite_memory import Chat, Memory
from finite_memory_api import AnthropicBackend, OpenAIBackend, Retry
from finite_memory_api._http import HTTPBackend

PROVIDERS = ("openai", "anthropic")

#: One tool in OpenAI's form (the Anthropic backend converts it).
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]
MODES = ("send", "stream", "asend", "astream")


def make_backend(server: FakeLLMServer, provider: str, **options: Any) -> HTTPBackend:
    options.setdefault("retry", Retry(max_retries=2, backoff=0.01, max_backoff=0.05))
    if provider == "openai":
        return OpenAIBackend("test-model", base_url=server.url + "/v1", api_key=KEY, **options)
    return AnthropicBackend("claude-test", base_url=server.url, api_key=KEY, **options)


def make_chat(server: FakeLLMServer, provider: str, **options: Any) -> Chat:
    memory = Memory(max_tokens=1024, reserve_output=64, system="You are a test.")
    return Chat(make_backend(server, provider, **options), memory)


def turn(chat: Chat, mode: str, text: str, **options: Any) -> str:
    """One turn through ``send``, ``stream``, ``asend`` or ``astream``; returns the reply text."""
    if mode == "send":
        return chat.send(text, **options).text
    if mode == "stream":
        return "".join(chat.stream(text, **options))

    async def run() -> str:
        try:
            if mode == "asend":
                return (await chat.asend(text, **options)).text
            return "".join([piece async for piece in chat.astream(text, **options)])
        finally:
            await chat.aclose()  # async clients belong to one event loop

    return asyncio.run(run())
