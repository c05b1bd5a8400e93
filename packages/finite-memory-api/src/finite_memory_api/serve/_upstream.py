"""The upstream model server: one backend per model name clients ask for, and its model list."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import httpx

from finite_memory import ApproxTokenizer, Backend, load_backend

from ._errors import ProxyError, Redactor
from ._pool import ShardedTransport

#: Backends kept at once (one per distinct ``model`` the clients send), least recently used out first.
MAX_MODELS = 32


class Upstream:
    """The serving engine behind the proxy.

    Args:
        spec: ``"scheme:model"``; the model is used when a request names none.
        options: backend options for :func:`finite_memory.load_backend` (``base_url``,
            ``timeout``, ``max_retries``...). The API key comes from the environment,
            as the backend reads it (``OPENAI_API_KEY``, ``ANTHROPIC_API_KEY``).

    Each model a client names gets its own backend, so the client's ``model`` passes
    through; each keeps a calibrated token estimate that seeds new sessions.
    """

    def __init__(self, spec: str, options: dict[str, Any]) -> None:
        scheme, sep, model = spec.partition(":")
        if not sep or not scheme or not model:
            raise ValueError(f"--backend is 'scheme:model' (for example 'openai:gpt-4o-mini'), got {spec!r}")
        if scheme not in ("openai", "anthropic"):
            raise ValueError(f"the proxy speaks to 'openai' or 'anthropic' backends, got {scheme!r}")
        self.scheme = scheme
        self.default_model = model
        self._options = options
        self._backends: OrderedDict[str, Backend] = OrderedDict()
        self._estimates: dict[str, ApproxTokenizer] = {}
        self._closing: set[asyncio.Task[None]] = set()
        first = self.backend(model)  # fails now, not on the first request, when the backend cannot be built
        headers = first._auth_headers()  # type: ignore[attr-defined]
        secrets = [v.removeprefix("Bearer ") for k, v in headers.items() if k.lower() in ("authorization", "x-api-key")]
        self.redact = Redactor(secrets, [first.url, first.base_url])  # type: ignore[attr-defined]
        self._auth = headers
        self._base_url: str = first.base_url  # type: ignore[attr-defined]
        self._client: httpx.AsyncClient | None = None

    def backend(self, model: str | None) -> Backend:
        """The backend for ``model`` (the default model when ``None``)."""
        model = model or self.default_model
        backend = self._backends.get(model)
        if backend is None:
            # httpx keeps 20 connections alive in one pool that it scans on every request: with more
            # turns in flight, most turns opened a connection, and the scans cost more than the turn
            backend = load_backend(f"{self.scheme}:{model}", async_transport=ShardedTransport(), **self._options)
            self._backends[model] = backend
            while len(self._backends) > MAX_MODELS:
                _, old = self._backends.popitem(last=False)
                closing = asyncio.get_running_loop().create_task(old.aclose())
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)
        else:
            self._backends.move_to_end(model)
        return backend

    def estimate(self, model: str | None) -> ApproxTokenizer:
        """A token estimate for ``model``, calibrated from every reply of that model so far."""
        model = model or self.default_model
        estimate = self._estimates.get(model)
        if estimate is None:
            estimate = self._estimates[model] = ApproxTokenizer()
        return estimate

    async def models(self) -> dict[str, Any]:
        """The upstream's model list, in OpenAI's form (an Anthropic list is converted)."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
        path = "/models" if self.scheme == "openai" else "/v1/models"
        try:
            response = await self._client.get(self._base_url + path, headers=self._auth)
        except httpx.TimeoutException:
            raise ProxyError(504, "the upstream server timed out listing models", code="upstream_timeout") from None
        except httpx.TransportError as exc:
            message = self.redact(f"upstream connection failed listing models: {type(exc).__name__}: {exc}")
            raise ProxyError(502, message, code="upstream_error", type="upstream_error") from None
        if response.status_code >= 400:
            message = self.redact(f"upstream HTTP {response.status_code} listing models: {response.text[:300]}")
            raise ProxyError(502, message, code="upstream_error", type="upstream_error")
        try:
            data = response.json()
            listed = data["data"]
            if self.scheme == "anthropic":
                listed = [_openai_model(m) for m in listed]
            return {"object": "list", "data": list(listed)}
        except (ValueError, KeyError, TypeError):
            message = "the upstream's model list is not in the expected form"
            raise ProxyError(502, message, code="upstream_error", type="upstream_error") from None

    async def aclose(self) -> None:
        for backend in self._backends.values():
            await backend.aclose()
        if self._client is not None:
            await self._client.aclose()


def _openai_model(model: dict[str, Any]) -> dict[str, Any]:
    return {"id": model["id"], "object": "model", "created": 0, "owned_by": "anthropic"}
