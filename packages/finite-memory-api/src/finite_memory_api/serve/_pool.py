"""Connections to the upstream: several small httpx pools instead of one large one.

On every request, httpcore's pool looks at each pooled connection (a ``poll()`` per
idle one, to see whether the server closed it) and, for each idle one, counts the idle
ones again. With the 50 turns in flight of a busy proxy, one pool spent more CPU than
the whole rest of a turn. Requests go to the pool with the fewest in flight (the first
such pool when several tie), so a light load uses one pool and a few connections, and a
heavy one spreads over all of them, each keeping its own few connections alive.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

#: Pools per backend, and connections each keeps alive between turns.
SHARDS = 16
KEEP_ALIVE = 8


class ShardedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that spreads requests over ``shards`` small connection pools."""

    def __init__(self, shards: int = SHARDS, keep_alive: int = KEEP_ALIVE) -> None:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=keep_alive)
        self._pools = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._busy = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = self._busy.index(min(self._busy))
        self._busy[index] += 1
        try:
            response = await self._pools[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tracked(response.stream, self._busy, index),  # type: ignore[arg-type]
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


class _Tracked(httpx.AsyncByteStream):
    """A response body that frees its pool's slot when it is closed."""

    def __init__(self, stream: httpx.AsyncByteStream, busy: list[int], index: int) -> None:
        self._stream = stream
        self._busy = busy
        self._index = index
        self._open = True

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        if self._open:
            self._open = False
            self._busy[self._index] -= 1
        await self._stream.aclose()
