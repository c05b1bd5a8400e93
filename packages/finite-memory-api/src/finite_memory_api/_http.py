"""What the OpenAI and Anthropic backends share: clients, retries, limits, errors, streaming.

Every byte a server sends goes through one path: :meth:`HTTPBackend._send` (status, retries,
deadline), a bounded reader (``_limits``), then the provider's parser (``_parse`` helpers),
which returns a valid :class:`~finite_memory.Completion` or raises; whatever it raises
leaves this module as a :class:`~finite_memory.BackendError` whose message went through
the redaction filter. Errors are raised outside ``except`` blocks, so no exception chain
carries a request (and its headers) out of the package.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from finite_memory import BackendError, Completion, ContextLengthError, Message, Tokenizer

from ._limits import ACCEPT_ENCODING, BodyDecoder, LimitExceeded, Limits, LineSplitter
from ._parse import Incomplete, Malformed, loads
from ._redact import Secret, clean_headers, clean_key, redact, snippet, split_credentials
from ._redact import install as install_redaction
from ._retry import RETRY_STATUSES, Retry, retry_after
from ._server_errors import context_overflow, server_message
from ._sse import Event, SSEDecoder

logger = logging.getLogger("finite_memory_api")

_VERSION = "0.1.0"

#: The most bytes of an error body read (its message is all that is kept).
_MAX_ERROR_BYTES = 256 * 1024


class ServerSaid(Exception):
    """A server answered with an error inside a successful response (a 200 body, a stream event)."""


class StreamAssembler:
    """Builds a :class:`Completion` from a provider's stream events, one at a time.

    ``feed`` returns the text piece an event carries (or ``""``) and raises
    :class:`~finite_memory_api._parse.Malformed` or :class:`ServerSaid`; ``complete`` is
    true once the reply carries its finish reason (the stream may then end, terminator or
    not); ``done`` once the server sent its terminator (nothing after it is read);
    ``finish`` raises ``Malformed`` unless the reply is complete.
    """

    complete = False
    done = False

    def feed(self, event: Event) -> str:
        raise NotImplementedError

    def finish(self) -> Completion:
        raise NotImplementedError


@dataclass(slots=True)
class _Call:
    """One request of a turn: where it goes, what it carries, and its bounds."""

    url: str
    body: bytes
    stream: bool
    started: float
    deadline: float
    cap: int


class HTTPBackend:
    """A chat backend over HTTP with one pooled client per backend (sync and async).

    Subclasses say where to send a prompt (``_path``), how to write it (``_body``), how to
    read a reply (``_parse``, ``_assembler``) and how to authenticate (``_auth_headers``).
    """

    scheme = "http"
    _path = ""
    tokenizer: Tokenizer | None = None
    #: ``Chat`` passes ``stable_prefix=`` and ``session=`` to backends that say they take them.
    accepts_cache_hints = True

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
        limits: Limits | None,
        transport: httpx.BaseTransport | None,
        async_transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        if not isinstance(model, str) or not model:
            raise ValueError(f"model must be a non-empty string, got {model!r}")
        install_redaction()
        self._key: Secret | None = clean_key(api_key)
        if not isinstance(base_url, str):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {type(base_url).__name__}")
        url, credentials, self._url_secrets = split_credentials(base_url.strip())
        if not url.startswith(("http://", "https://")) or any(c in url for c in "\r\n\0 "):
            raise ValueError(f"base_url must be an http:// or https:// URL, got {redact(url)[:200]!r}")
        for label, value in (("timeout", timeout), ("connect_timeout", connect_timeout)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{label} must be a positive finite number of seconds, got {value!r}")
        if retry is not None and not isinstance(retry, Retry):
            raise TypeError(f"retry must be a finite_memory_api.Retry, not {type(retry).__name__}")
        if limits is not None and not isinstance(limits, Limits):
            raise TypeError(f"limits must be a finite_memory_api.Limits, not {type(limits).__name__}")
        self.model = model
        self.name = f"{self.scheme}:{model}"
        self.base_url = url.rstrip("/")
        self.url = self.base_url + self._path
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.retry = retry if retry is not None else Retry(max_retries=max_retries)
        self.limits = limits if limits is not None else Limits()
        self.headers, self._header_secrets = clean_headers(headers)
        self.retries = 0
        self._auth = httpx.BasicAuth(*credentials) if credentials else None
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

    def _max_tokens_field(self) -> str:
        return "max_tokens"

    def _parse(self, data: Any) -> Completion:
        """A whole reply's JSON as a Completion; raises ``Malformed`` or ``ServerSaid``."""
        raise NotImplementedError

    def _assembler(self) -> StreamAssembler:
        raise NotImplementedError

    # -- requests ------------------------------------------------------------------------

    def _call(self, messages: Sequence[Message], options: dict[str, Any], stream: bool) -> _Call:
        if not messages:
            raise ValueError("a prompt needs at least one message")
        max_new = options.pop("max_new_tokens", None)
        reserved = {"model", "messages", "stream"} & options.keys()
        if reserved:
            raise TypeError(f"{', '.join(sorted(reserved))} cannot be passed as options; the backend sets them")
        body = self._body(messages, options)
        if max_new is not None:
            body[self._max_tokens_field()] = max_new
        if stream:
            body["stream"] = True
        try:
            encoded = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except ValueError as exc:  # NaN or infinity in an option: JSON has no such numbers
            raise ValueError(f"a request option is not valid JSON: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"a request option cannot be sent as JSON: {exc}") from None
        started = time.monotonic()
        cap = self.limits.stream_cap(max_new if isinstance(max_new, int) else None)
        return _Call(self.url, encoded, stream, started, started + self.limits.deadline, cap)

    def _client_options(self) -> dict[str, Any]:
        return {
            "timeout": httpx.Timeout(self.timeout, connect=self.connect_timeout),
            "headers": {"user-agent": f"finite-memory-api/{_VERSION}", **self.headers},
            "auth": self._auth,
            "follow_redirects": False,
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
        return {"content-type": "application/json", "accept-encoding": ACCEPT_ENCODING, **self._auth_headers()}

    def _remaining(self, call: _Call, retries: int) -> float:
        left = call.deadline - time.monotonic()
        if left <= 0:
            raise self._error(f"the turn ran past its deadline of {self.limits.deadline:g} s", None, retries)
        return left

    def _request(self, client: httpx.Client | httpx.AsyncClient, call: _Call, retries: int) -> httpx.Request:
        left = self._remaining(call, retries)
        timeout = httpx.Timeout(min(self.timeout, left), connect=min(self.connect_timeout, left))
        return client.build_request(
            "POST", call.url, content=call.body, headers=self._request_headers(), timeout=timeout
        )

    def _send(self, call: _Call) -> tuple[httpx.Response, int]:
        """POST with retries; returns a 2xx response (open when streaming) and the retries it took."""
        client = self._sync_client()
        attempt = 0
        while True:
            failure: Exception | None = None
            error_body = b""
            try:
                response = client.send(self._request(client, call, attempt), stream=True)
            except httpx.TransportError as exc:
                failure, response = exc, None  # type: ignore[assignment]
            if response is not None:
                if 200 <= response.status_code < 300:
                    return response, attempt
                try:
                    error_body = self._read_error(_chunks(response), response)
                except httpx.TransportError:
                    pass
                finally:
                    response.close()
            wait = self._give_up_or_wait(call, failure, response, error_body, attempt)
            time.sleep(wait)
            attempt += 1

    async def _asend(self, call: _Call) -> tuple[httpx.Response, int]:
        """:meth:`_send` on the async client."""
        import asyncio

        client = self._aclient()
        attempt = 0
        while True:
            failure: Exception | None = None
            error_body = b""
            try:
                response = await client.send(self._request(client, call, attempt), stream=True)
            except httpx.TransportError as exc:
                failure, response = exc, None  # type: ignore[assignment]
            if response is not None:
                if 200 <= response.status_code < 300:
                    return response, attempt
                try:
                    error_body = self._read_error([chunk async for chunk in _bounded_aiter(response)], response)
                except httpx.TransportError:
                    pass
                finally:
                    await response.aclose()
            wait = self._give_up_or_wait(call, failure, response, error_body, attempt)
            await asyncio.sleep(wait)
            attempt += 1

    def _read_error(self, chunks: Any, response: httpx.Response) -> bytes:
        """At most ``_MAX_ERROR_BYTES`` of an error body, decoded; the rest is never read."""
        limit = min(_MAX_ERROR_BYTES, self.limits.max_response_bytes)
        try:
            encoding = None if response.is_stream_consumed else response.headers.get("content-encoding")
            decoder = BodyDecoder(encoding, limit)
        except LimitExceeded:
            return b""
        out = bytearray()
        for raw in chunks:
            try:
                out += decoder.feed(raw)
            except LimitExceeded:
                break
            if len(out) >= limit:
                break
        return bytes(out[:limit])

    def _give_up_or_wait(
        self, call: _Call, failure: Exception | None, response: httpx.Response | None, body: bytes, attempt: int
    ) -> float:
        """Seconds to wait before the next try, or raise the ``BackendError`` that ends the call."""
        wait: float | None = None
        if response is not None:
            status = response.status_code
            if status in RETRY_STATUSES:
                wait = self.retry.delay(attempt, retry_after(response.headers))
            if wait is None or time.monotonic() + wait >= call.deadline:
                raise self._status_error(call.url, response, body, attempt)
            why = f"HTTP {status}"
        else:
            assert failure is not None
            why = _describe(failure)
            if isinstance(failure, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
                # our own request could not be written (a bad header, a bad URL): no network fault, no retry
                raise self._error(f"the request could not be sent: {why}", None, attempt)
            wait = self.retry.delay(attempt)
            if wait is None or time.monotonic() + wait >= call.deadline:
                raise self._error(f"{why} calling {call.url}", None, attempt)
        self.retries += 1
        logger.info(
            "%s: %s from %s; retry %d/%d in %.2f s", self.name, why, call.url, attempt + 1, self.retry.max_retries, wait
        )
        return wait

    def _error(self, message: str, status: int | None, retries: int, **extra: Any) -> BackendError:
        text = f"{self.name}: {message}"
        if retries:
            text += f" (after {retries} {'retry' if retries == 1 else 'retries'})"
        if extra:
            return ContextLengthError(redact(text), status=status, retries=retries, **extra)
        return BackendError(redact(text), status=status, retries=retries)

    def _status_error(self, url: str, response: httpx.Response, body: bytes, retries: int) -> BackendError:
        status = response.status_code
        if 300 <= status < 400:
            where = snippet(response.headers.get("location", "nowhere"), 200)
            return self._error(
                f"HTTP {status} from {url}: a redirect to {where}, which is not followed (check base_url)",
                status,
                retries,
            )
        message, data = server_message(body)
        text = f"HTTP {status} from {url}: {snippet(message or response.reason_phrase)}"
        overflow = context_overflow(status, message, data)
        if overflow is not None:
            limit, prompt = overflow
            return self._error(text, status, retries, limit=limit, prompt_tokens=prompt)
        return self._error(text, status, retries)

    def _malformed(
        self, exc: Exception, status: int, body: bytes | str, retries: int, *, stream: bool = False
    ) -> BackendError:
        """The error for a reply that could not be read: what was wrong, the status, a redacted excerpt."""
        if isinstance(exc, Incomplete):
            return self._error(f"{exc}; the reply is incomplete", status, retries)
        if isinstance(exc, ServerSaid):
            text = f"the server sent an error{' mid-stream' if stream else ''}: {snippet(str(exc))}"
            overflow = context_overflow(None, str(exc), None)
            if overflow is not None:
                return self._error(text, status, retries, limit=overflow[0], prompt_tokens=overflow[1])
            return self._error(text, status, retries)
        what = "stream" if stream else "reply"
        excerpt = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        shown = f"; {snippet(excerpt, 200)!r}" if excerpt else ""
        return self._error(
            f"malformed {what} from {self.url} (HTTP {status}): {snippet(str(exc))}{shown}", status, retries
        )

    # -- whole replies -------------------------------------------------------------------------

    def _whole(self, raw: bytes, response: httpx.Response, call: _Call, retries: int) -> Completion:
        try:
            completion = self._parse(loads(raw))
        except (Malformed, ServerSaid) as exc:
            failure: Exception = exc
        else:
            completion.stats.update(_timing(call.started, retries))
            return completion
        raise self._malformed(failure, response.status_code, raw, retries)

    def _body_decoder(self, response: httpx.Response, retries: int) -> BodyDecoder:
        encoding = None if response.is_stream_consumed else response.headers.get("content-encoding")
        try:
            return BodyDecoder(encoding, self.limits.max_response_bytes)
        except LimitExceeded as exc:
            message = str(exc)
        raise self._error(message, response.status_code, retries)

    def _read_whole(self, response: httpx.Response, call: _Call, retries: int) -> bytes:
        """A whole 2xx body, decoded and bounded; the response is closed after."""
        reader = _WholeReader(self, response, call, retries)
        try:
            for raw in _chunks(response):
                reader.feed(raw)
        except httpx.TransportError as exc:
            reader.broke(exc)
        finally:
            response.close()
        return reader.finish()

    async def _aread_whole(self, response: httpx.Response, call: _Call, retries: int) -> bytes:
        """:meth:`_read_whole` on the async client."""
        reader = _WholeReader(self, response, call, retries)
        try:
            async for raw in _achunks(response):
                reader.feed(raw)
        except httpx.TransportError as exc:
            reader.broke(exc)
        finally:
            await response.aclose()
        return reader.finish()

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion:
        """One reply, whole."""
        call = self._call(messages, options, stream=False)
        response, retries = self._send(call)
        return self._whole(self._read_whole(response, call, retries), response, call, retries)

    def _post_json(self, url: str, payload: dict[str, Any]) -> Any:
        """A side request (``/tokenize``) through the same retries, limits and redaction; its JSON answer."""
        started = time.monotonic()
        call = _Call(url, json.dumps(payload).encode(), False, started, started + self.limits.deadline, 0)
        response, retries = self._send(call)
        raw = self._read_whole(response, call, retries)
        try:
            return loads(raw)
        except Malformed as exc:
            failure = exc
        raise self._malformed(failure, response.status_code, raw, retries)

    async def acomplete(self, messages: Sequence[Message], **options: Any) -> Completion:
        """:meth:`complete` on the async client."""
        call = self._call(messages, options, stream=False)
        response, retries = await self._asend(call)
        return self._whole(await self._aread_whole(response, call, retries), response, call, retries)

    # -- streams -----------------------------------------------------------------------------

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]:
        """The reply's text pieces as they arrive, then the finished :class:`Completion`."""
        call = self._call(messages, options, stream=True)
        response, retries = self._send(call)
        reader = _StreamReader(self, response, call, retries)
        try:
            for raw in _chunks(response):
                yield from reader.feed(raw)
                if reader.stopped:
                    break
        except httpx.TransportError as exc:
            reader.broke(exc)
        finally:
            response.close()
        yield from reader.end()

    async def astream(self, messages: Sequence[Message], **options: Any) -> AsyncIterator[str | Completion]:
        """:meth:`stream` on the async client."""
        call = self._call(messages, options, stream=True)
        response, retries = await self._asend(call)
        reader = _StreamReader(self, response, call, retries)
        try:
            async for raw in _achunks(response):
                for item in reader.feed(raw):
                    yield item
                if reader.stopped:
                    break
        except httpx.TransportError as exc:
            reader.broke(exc)
        finally:
            await response.aclose()
        for item in reader.end():
            yield item

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


class _WholeReader:
    """A whole reply, fed raw bytes: decoded and bounded; errors come out as redacted ``BackendError``."""

    def __init__(self, backend: HTTPBackend, response: httpx.Response, call: _Call, retries: int) -> None:
        self.backend, self.call, self.retries, self.status = backend, call, retries, response.status_code
        self.decoder = backend._body_decoder(response, retries)
        self.body = bytearray()
        self.failure = ""

    def feed(self, raw: bytes) -> None:
        try:
            self.body += self.decoder.feed(raw)
        except LimitExceeded as exc:
            self.failure = str(exc)
        if self.failure:
            raise self.backend._error(self.failure, self.status, self.retries)
        self.backend._remaining(self.call, self.retries)

    def broke(self, exc: Exception) -> None:
        self.failure = f"the reply broke: {_describe(exc)}"

    def finish(self) -> bytes:
        if not self.failure:
            try:
                self.decoder.finish()
            except LimitExceeded as exc:
                self.failure = str(exc)
        if self.failure:
            raise self.backend._error(self.failure, self.status, self.retries)
        return bytes(self.body)


class _StreamReader:
    """One streamed reply, fed raw bytes: decoding, line and event splitting, limits, assembly.

    A reply sent whole to a stream request (``application/json``: a server that ignores
    ``stream``) is read as a whole reply. Errors are raised as redacted ``BackendError``.
    """

    def __init__(self, backend: HTTPBackend, response: httpx.Response, call: _Call, retries: int) -> None:
        self.backend, self.call, self.retries, self.status = backend, call, retries, response.status_code
        self.decoder = backend._body_decoder(response, retries)
        self.whole = "json" in response.headers.get("content-type", "") and "event-stream" not in response.headers.get(
            "content-type", ""
        )
        self.body = bytearray()
        self.lines = LineSplitter(backend.limits.max_line_bytes)
        self.events = SSEDecoder()
        self.assembler = backend._assembler()
        self.pieces = 0
        self.stopped = False
        self.failure: BackendError | None = None

    def _fail(self, error: BackendError) -> BackendError:
        self.stopped = True
        return error

    def feed(self, raw: bytes) -> list[str]:
        backend, pieces = self.backend, []
        try:
            data = self.decoder.feed(raw)
            if self.whole:
                self.body += data
            else:
                for line in self.lines.feed(data):
                    pieces += self._line(line)
                    if self.assembler.done:
                        self.stopped = True
                        break
        except LimitExceeded as exc:
            raise self._fail(backend._error(str(exc), self.status, self.retries)) from None
        except (Malformed, ServerSaid) as exc:
            failure: Exception = exc
        else:
            backend._remaining(self.call, self.retries)
            return pieces
        raise self._fail(backend._malformed(failure, self.status, "", self.retries, stream=True))

    def _line(self, line: str) -> list[str]:
        event = self.events.feed(line)
        if event is None:
            return []
        piece = self.assembler.feed(event)
        if not piece:
            return []
        self.pieces += 1
        if self.pieces > self.call.cap:
            raise LimitExceeded(f"the stream sent more than {self.call.cap:,} text events (max_stream_tokens)")
        return [piece]

    def broke(self, exc: Exception) -> None:
        """The connection failed mid-stream: an error, unless the reply was already complete."""
        if not self.assembler.complete:
            self.failure = self.backend._error(f"the stream broke: {_describe(exc)}", None, self.retries)

    def end(self) -> list[str | Completion]:
        """What the end of the stream brings: the last text pieces and the Completion, or an error."""
        backend = self.backend
        if self.failure is not None:
            raise self.failure
        items: list[str | Completion] = []
        try:
            if self.whole:
                self.decoder.finish()
                completion = backend._parse(loads(bytes(self.body)))
                if completion.text:
                    items.append(completion.text)
            else:
                if not self.assembler.done and not self.assembler.complete:
                    for line in [*self.lines.finish(), ""]:  # an event cut at the very end still counts
                        items += self._line(line)
                completion = self.assembler.finish()
        except LimitExceeded as exc:
            failure: Exception = exc
        except (Malformed, ServerSaid) as exc:
            failure = exc
        else:
            completion.stats.update(_timing(self.call.started, self.retries))
            return [*items, completion]
        if isinstance(failure, LimitExceeded):
            raise backend._error(str(failure), self.status, self.retries)
        raise backend._malformed(failure, self.status, bytes(self.body), self.retries, stream=not self.whole)


def _chunks(response: httpx.Response) -> Iterator[bytes]:
    """The body's raw bytes as they arrive (a response built in memory, as a mock's, is whole already)."""
    if response.is_stream_consumed:
        yield response.content
    else:
        yield from response.iter_raw()


async def _achunks(response: httpx.Response) -> AsyncIterator[bytes]:
    """:func:`_chunks` for the async client."""
    if response.is_stream_consumed:
        yield response.content
    else:
        async for chunk in response.aiter_raw():
            yield chunk


async def _bounded_aiter(response: httpx.Response) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in _achunks(response):
        yield chunk
        size += len(chunk)
        if size >= _MAX_ERROR_BYTES:
            return


def env_or(value: str | None, variable: str, default: str | None = None) -> str | None:
    """``value``, else the environment variable, else ``default``."""
    if value is not None:
        return value
    return os.environ.get(variable) or default


def _timing(started: float, retries: int) -> dict[str, Any]:
    return {"request_ms": (time.monotonic() - started) * 1000, "retries": retries}


def _describe(exc: Exception) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    if isinstance(exc, (httpx.LocalProtocolError, httpx.UnsupportedProtocol)):
        kind = "refused locally"
    detail = f": {exc}" if str(exc) else ""
    return redact(f"{kind} ({type(exc).__name__}{detail})")
