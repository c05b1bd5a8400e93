"""What the OpenAI and Anthropic backends share: clients, retries, errors, streaming."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import httpx

from finite_memory import BackendError, Completion, Message, Tokenizer

from ._retry import RETRY_STATUSES, Retry, retry_after
from ._sse import Event, SSEDecoder

logger = logging.getLogger("finite_memory_api")

_VERSION = "0.1.0"


class Secret:
    """An API key that never shows itself in a ``repr``, a log line or an error."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def reveal(self) -> str:
        return self._value

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced by ``***``."""
        return text.replace(self._value, "***") if self._value else text

    def __reduce__(self) -> Any:
        raise TypeError("an API key cannot be pickled")


class StreamAssembler:
    """Builds a :class:`Completion` from a provider's stream events, one at a time.

    ``feed`` returns the text piece an event carries (or ``""``) and raises
    ``ValueError`` for an event it cannot read; ``finish`` raises ``BackendError``
    unless the stream reached its terminator and a finish reason.
    """

    def feed(self, event: Event) -> str:
        raise NotImplementedError

    def finish(self, stats: dict[str, Any]) -> Completion:
        raise NotImplementedError


class HTTPBackend:
    """A chat backend over HTTP with one pooled client per backend (sync and async).

    Subclasses say where to send a prompt (``_path``), how to write it (``_payload``),
    how to read a reply (``_parse``, ``_assembler``) and how to authenticate
    (``_auth_headers``).
    """

    scheme = "http"
    _path = ""
    _max_tokens_field = "max_tokens"
    tokenizer: Tokenizer | None = None

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None,
        timeout: float,
        connect_timeout: float,
        max_retries: int,
        retry: Retry | None,
        headers: Mapping[str, str] | None,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {base_url!r}")
        if api_key is not None and not isinstance(api_key, str):
            raise TypeError(f"api_key must be a str or None, not {type(api_key).__name__}")
        for label, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{label} must be a positive number of seconds, got {value!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a finite_memory_api.Retry, not {type(retry).__name__}")
        self.model = model
        self.name = f"{self.scheme}:{model}"
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + self._path
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry = retry if retry is not None else Retry(max_retries=max_retries)
        self.headers = {str(k): str(v) for k, v in (headers or {}).items()}
        self.retries = 0
        self._key = Secret(api_key) if api_key else None
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_loop: object = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r}, base_url={self.base_url!r})"

    # -- what a provider defines ---------------------------------------------------------

    def _auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def _body(self, messages: Sequence[Message], options: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def _parse(self, data: Any) -> Completion:
        raise NotImplementedError

    def _assembler(self) -> StreamAssembler:
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------------

    def _payload(self, messages: Sequence[Message], options: dict[str, Any], stream: bool) -> bytes:
        if not messages:
            raise ValueError("a prompt needs at least one message")
        max_new = options.pop("max_new_tokens", None)
        reserved = {"model", "messages", "stream"} & options.keys()
        if reserved:
            raise TypeError(f"{', '.join(sorted(reserved))} cannot be passed as options; the backend sets them")
        body = self._body(messages, options)
        if max_new is not None:
            body[self._max_tokens_field] = max_new
        if stream:
            body["stream"] = True
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()

    def _client_options(self) -> dict[str, Any]:
        return {
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout),
            "headers": {"user-agent": f"finite-memory-api/{_VERSION}", **self.headers},
        }

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(transport=self._transport, **self._client_options())
        return self._client

    def _aclient(self) -> httpx.AsyncClient:
        import asyncio

        loop = asyncio.get_running_loop()
        if self._async_client is None or self._async_loop is not loop:
            # An async client's connections belong to the event loop that opened them; a
            # new loop (a second ``asyncio.run``) gets a new client. The old loop is gone
            # with its sockets, so there is nothing left to close.
            self._async_client = httpx.AsyncClient(transport=self._async_transport, **self._client_options())
            self._async_loop = loop
        return self._async_client

    def _request_headers(self) -> dict[str, str]:
        return {"content-type": "application/json", **self._auth_headers()}

    def _send(self, url: str, body: bytes, *, stream: bool) -> tuple[httpx.Response, int]:
        """POST with retries; returns the response (status < 400) and the retries it took."""
        client = self._sync_client()
        attempt = 0
        while True:
            request = client.build_request("POST", url, content=body, headers=self._request_headers())
            try:
                response = client.send(request, stream=stream)
            except httpx.TransportError as exc:
                wait = self._give_up_or_wait(url, exc, None, attempt)
            else:
                if response.status_code < 400:
                    return response, attempt
                try:
                    response.read()
                finally:
                    response.close()
                wait = self._give_up_or_wait(url, None, response, attempt)
            time.sleep(wait)
            attempt += 1

    async def _asend(self, url: str, body: bytes, *, stream: bool) -> tuple[httpx.Response, int]:
        """:meth:`_send` on the async client."""
        import asyncio

        client = self._aclient()
        attempt = 0
        while True:
            request = client.build_request("POST", url, content=body, headers=self._request_headers())
            try:
                response = await client.send(request, stream=stream)
            except httpx.TransportError as exc:
                wait = self._give_up_or_wait(url, exc, None, attempt)
            else:
                if response.status_code < 400:
                    return response, attempt
                try:
                    await response.aread()
                finally:
                    await response.aclose()
                wait = self._give_up_or_wait(url, None, response, attempt)
            await asyncio.sleep(wait)
            attempt += 1

    def _give_up_or_wait(self, url: str, exc: Exception | None, response: httpx.Response | None, attempt: int) -> float:
        """Seconds to wait before the next try, or raise the ``BackendError`` that ends the call."""
        wait: float | None = None
        if response is not None:
            if response.status_code in RETRY_STATUSES:
                wait = self.retry.delay(attempt, retry_after(response.headers))
            if wait is None:
                raise self._status_error(url, response, attempt)
            why = f"HTTP {response.status_code}"
        else:
            assert exc is not None
            wait = self.retry.delay(attempt)
            why = _describe(exc)
            if wait is None:
                raise self._error(f"{why} calling {url}", None, attempt) from exc
        self.retries += 1
        logger.info(
            "%s: %s from %s; retry %d/%d in %.2f s", self.name, why, url, attempt + 1, self.retry.max_retries, wait
        )
        return wait

    def _error(self, message: str, status: int | None, retries: int) -> BackendError:
        text = f"{self.name}: {message}"
        if retries:
            text += f" (after {retries} {'retry' if retries == 1 else 'retries'})"
        if self._key is not None:
            text = self._key.redact(text)
        return BackendError(text, status=status, retries=retries)

    def _status_error(self, url: str, response: httpx.Response, retries: int) -> BackendError:
        message = _server_message(response)
        return self._error(f"HTTP {response.status_code} from {url}: {message}", response.status_code, retries)

    def _json(self, response: httpx.Response, retries: int) -> Any:
        try:
            return json.loads(response.content)
        except ValueError:
            snippet = response.text[:200]
            raise self._error(f"malformed JSON in the reply from {response.url}: {snippet!r}", None, retries) from None

    def _completion(self, data: Any, started: float, retries: int) -> Completion:
        try:
            completion = self._parse(data)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._error(f"unexpected reply from {self.url}: {type(exc).__name__}: {exc}", None, retries) from None
        completion.stats.update(_timing(started, retries))
        return completion

    # -- the Backend protocol ------------------------------------------------------------

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion:
        """One reply, whole."""
        body = self._payload(messages, options, stream=False)
        started = time.perf_counter()
        response, retries = self._send(self.url, body, stream=False)
        return self._completion(self._json(response, retries), started, retries)

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> Completion:
        """:meth:`complete` on the async client."""
        body = self._payload(messages, options, stream=False)
        started = time.perf_counter()
        response, retries = await self._asend(self.url, body, stream=False)
        return self._completion(self._json(response, retries), started, retries)

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]:
        """The reply's text pieces as they arrive, then the finished :class:`Completion`."""
        body = self._payload(messages, options, stream=True)
        started = time.perf_counter()
        response, retries = self._send(self.url, body, stream=True)
        assembler, decoder = self._assembler(), SSEDecoder()
        try:
            for line in response.iter_lines():
                piece = self._feed(assembler, decoder, line, retries)
                if piece:
                    yield piece
        except httpx.TransportError as exc:
            raise self._error(f"the stream broke: {_describe(exc)}", None, retries) from exc
        finally:
            response.close()
        yield self._finish(assembler, decoder, started, retries)

    async def astream(self, messages: Sequence[Message], **options: Any) -> AsyncIterator[str | Completion]:
        """:meth:`stream` on the async client."""
        body = self._payload(messages, options, stream=True)
        started = time.perf_counter()
        response, retries = await self._asend(self.url, body, stream=True)
        assembler, decoder = self._assembler(), SSEDecoder()
        try:
            async for line in response.aiter_lines():
                piece = self._feed(assembler, decoder, line, retries)
                if piece:
                    yield piece
        except httpx.TransportError as exc:
            raise self._error(f"the stream broke: {_describe(exc)}", None, retries) from exc
        finally:
            await response.aclose()
        yield self._finish(assembler, decoder, started, retries)

    def _feed(self, assembler: StreamAssembler, decoder: SSEDecoder, line: str, retries: int) -> str:
        try:
            event = decoder.feed(line)
            return assembler.feed(event) if event is not None else ""
        except BackendError as exc:  # an error event the server sent mid-stream
            raise self._error(str(exc), exc.status, retries) from None
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise self._error(f"malformed stream from {self.url}: {exc}", None, retries) from None

    def _finish(self, assembler: StreamAssembler, decoder: SSEDecoder, started: float, retries: int) -> Completion:
        if decoder.pending():
            raise self._error(f"the stream from {self.url} ended inside an event", None, retries)
        try:
            return assembler.finish(_timing(started, retries))
        except BackendError as exc:
            raise self._error(str(exc), exc.status, retries) from None

    # -- lifetime ------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client's connections (a later call opens a new client)."""
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both clients' connections."""
        self.close()
        if self._async_client is not None:
            import asyncio

            client, loop = self._async_client, self._async_loop
            self._async_client = self._async_loop = None
            if loop is asyncio.get_running_loop():  # a finished loop took its sockets with it
                await client.aclose()

    def __enter__(self) -> HTTPBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> HTTPBackend:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def env_or(value: str | None, variable: str, default: str | None = None) -> str | None:
    """``value``, else the environment variable, else ``default``."""
    if value is not None:
        return value
    return os.environ.get(variable) or default


def usage_stats(prompt: int, completion: int, cached: int) -> tuple[dict[str, int], dict[str, Any]]:
    """A reply's ``usage`` and the ``stats`` derived from it."""
    usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    stats = {"prefill_tokens": prompt - cached, "reused_tokens": cached, "generated_tokens": completion}
    return usage, stats


def _timing(started: float, retries: int) -> dict[str, Any]:
    return {"request_ms": (time.perf_counter() - started) * 1000, "retries": retries}


def _describe(exc: Exception) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    detail = f": {exc}" if str(exc) else ""
    return f"{kind} ({type(exc).__name__}{detail})"


def _server_message(response: httpx.Response) -> str:
    """The error message a server put in its body (OpenAI and Anthropic forms), or the body."""
    text = response.text.strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or response.reason_phrase
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str):
                    return str(error[key])
        elif isinstance(error, str):
            return error
    return text[:500]
