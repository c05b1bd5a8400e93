"""The proxy's upstream connections: small pools that fill in order and are always given back."""

from __future__ import annotations

import asyncio

import httpx
from _api_server import FakeLLMServer

from finite_memory_api.serve._pool import ShardedTransport

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def connections(transport: ShardedTransport) -> list[int]:
    return [len(pool._pool.connections) for pool in transport._pools]


def test_a_light_load_uses_one_pool_and_a_heavy_one_spreads(server: FakeLLMServer) -> None:
    transport = ShardedTransport(shards=4, keep_alive=2)
    url = server.url + "/v1/chat/completions"

    async def main() -> None:
        async with httpx.AsyncClient(transport=transport) as client:
            for _ in range(5):
                assert (await client.post(url, json=BODY)).status_code == 200
            assert connections(transport) == [1, 0, 0, 0]
            server.delay = 0.2
            replies = await asyncio.gather(*(client.post(url, json=BODY) for _ in range(8)))
            assert all(r.status_code == 200 for r in replies)
            assert all(n >= 1 for n in connections(transport))  # eight at once: every pool took some
            server.faults.append("500")
            assert (await client.post(url, json=BODY)).status_code == 500
            async with client.stream("POST", url, json={**BODY, "stream": True}) as response:
                async for _ in response.aiter_lines():
                    break  # a stream left early is given back too
        assert transport._busy == [0, 0, 0, 0]

    asyncio.run(main())
