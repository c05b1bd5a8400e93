"""Errors the proxy answers with, in OpenAI's ``{"error": {...}}`` form, and how upstream failures map to them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx

from finite_memory import BackendError


class ProxyError(Exception):
    """A request the proxy answers with an error status and an OpenAI-style body.

    ``code`` is machine-readable (``"invalid_json"``, ``"session_busy"``...) and is also
    the ``kind`` label of the ``finite_memory_serve_errors_total`` metric.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def encoded(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False, separators=(",", ":")).encode()


def bad_request(message: str, *, code: str = "invalid_value", param: str | None = None) -> ProxyError:
    return ProxyError(400, message, code=code, param=param)


def session_busy(message: str, *, retry_after: float) -> ProxyError:
    """409: another turn holds the session; clients (the OpenAI SDKs do) may retry after ``retry_after`` s."""
    headers = {"retry-after": str(max(1, round(retry_after))), "x-should-retry": "true"}
    return ProxyError(409, message, code="session_busy", type="conflict_error", headers=headers)


#: Upstream statuses that say the client's request was wrong; they keep their status.
_CLIENT_FAULTS = frozenset({400, 404, 413, 422})


class Redactor:
    """Replaces secrets (the upstream key) and internal addresses (the upstream URL) in messages."""

    def __init__(self, secrets: Iterable[str], addresses: Iterable[str]) -> None:
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)
        self._addresses = sorted({a for a in addresses if a}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        for address in self._addresses:
            text = text.replace(address, "the upstream server")
        return text


def upstream_error(exc: BackendError, redact: Redactor) -> ProxyError:
    """What a client sees when the upstream call failed.

    A timeout is 504; an upstream 400, 404, 413 or 422 (the request itself was refused:
    an unknown model, a bad tool schema, too long a prompt) keeps its status; an upstream
    429 stays 429; every other failure (5xx, 401/403 of the proxy's own key, a broken
    connection or stream, a reply that cannot be read) is 502. The message names the
    upstream status and quotes the upstream's own message, with the key and the
    upstream's address taken out.
    """
    detail = redact(str(exc))
    status = exc.status
    if _timed_out(exc):
        return ProxyError(
            504, f"the upstream server timed out: {detail}", code="upstream_timeout", type="upstream_error"
        )
    what = f"HTTP {status}" if status else "failure"
    message = f"upstream {what}: {detail}"
    if status in _CLIENT_FAULTS:
        return ProxyError(status, message, code="upstream_rejected")
    if status == 429:
        return ProxyError(429, message, code="upstream_rate_limited", type="rate_limit_error")
    return ProxyError(502, message, code="upstream_error", type="upstream_error")


def _timed_out(exc: BaseException) -> bool:
    """Whether a backend error came from a timeout: an httpx timeout behind it, or its message says so."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain of causes, short in practice
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None:
            break
        if isinstance(seen, (httpx.TimeoutException, TimeoutError)):
            return True
    text = str(exc)  # an upstream's own message (with a status) may say "timed out" too: not ours
    return getattr(exc, "status", None) is None and ("timed out" in text or "past its deadline" in text)
