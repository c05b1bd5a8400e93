"""The proxy's ASGI application: routes, sessions, errors, headers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from finite_memory import ApproxTokenizer, BackendError, Completion, Context, Memory, StoreError
from finite_memory.stores import StoreConflict, open_store

from ._chunks import SSEEncoder, completion_body, sse_error
from ._config import CONFIG_ENV, SESSION_HEADER, ServeConfig
from ._errors import ProxyError, bad_request, session_busy, upstream_error
from ._metrics import Metrics
from ._request import ChatRequest, parse_chat_request
from ._sessions import Sessions
from ._tenants import Tenants, session_name
from ._turn import archiver, run_turn
from ._upstream import Upstream

logger = logging.getLogger("finite_memory_api.serve")

_JSON = "application/json"


@dataclass
class _Outcome:
    """What a turn produced besides its reply: filled in as the turn runs."""

    context: Context | None = None
    archived: int | None = None
    sent: float = 0.0  # when the context went upstream


class Proxy:
    """The state behind one process's routes: upstream, store, sessions, tenants, metrics."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        # a memory with these settings, built once now so a bad policy or budget fails at start
        Memory(config.policy, config.max_tokens, config.reserve_output, **config.policy_options)
        self.upstream = Upstream(
            config.backend,
            {
                **({"base_url": config.base_url} if config.base_url else {}),
                "timeout": config.upstream_timeout,
                "max_retries": config.upstream_retries,
            },
        )
        self.tenants = Tenants(config.api_keys_file) if config.api_keys_file else None
        self.store = open_store(config.store)
        self.sessions = Sessions(
            self.store, limit=config.max_sessions, max_messages=config.max_cached_messages, wait=config.session_wait
        )
        self.in_flight = 0
        self._id_prefix = uuid.uuid4().hex[:16]
        self._replies = 0
        self.metrics = Metrics(
            config.metrics_dir,
            gauges={
                "finite_memory_sessions_open": lambda: len(self.sessions),
                "finite_memory_cached_messages": lambda: self.sessions.messages,
                "finite_memory_turns_in_flight": lambda: self.in_flight,
            },
        )

    # -- routes -----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        tenant = self._tenant(request)
        chat = parse_chat_request(await self._body(request), self.upstream.scheme)
        options = dict(chat.options)
        if "max_new_tokens" not in options and "max_completion_tokens" not in options:
            options["max_new_tokens"] = self._memory_reserve()
        session_id = request.headers.get(SESSION_HEADER)
        outcome = _Outcome()
        if session_id is None:
            events = self._stateless(chat, options, outcome)
        else:
            events = self._session(session_name(tenant, session_id), chat, options, outcome)
        rid = self._reply_id()
        model = chat.model or self.upstream.default_model
        if chat.stream:
            return await self._streamed(events, outcome, rid, model, chat.include_usage)
        return await _until_disconnect(request, self._whole(events, outcome, rid, model))

    async def models(self, request: Request) -> Response:
        self._tenant(request)
        return _json(200, await self.upstream.models())

    async def health(self, request: Request) -> Response:
        return _json(200, {"status": "ok"})

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- turns --------------------------------------------------------------------------------

    async def _session(
        self, name: str, chat: ChatRequest, options: dict[str, Any], outcome: _Outcome
    ) -> AsyncIterator[Context | str | Completion]:
        """A stateful turn: the request's messages are this turn's new ones."""
        system = [m.content for m in chat.messages if m.role == "system"]
        new = [m for m in chat.messages if m.role != "system"]
        if not new:
            raise bad_request("a session turn needs a new user or tool message", param="messages")
        backend = self.upstream.backend(chat.model)
        estimate = self.upstream.estimate(chat.model)
        async with self.sessions.turn(name, lambda n: self._open_memory(n, estimate)) as session:
            outcome.archived = len(session.memory)  # until this turn is archived (a stream's headers show this)
            prompt = system[-1] if system and system[-1] != session.system else None
            archive = archiver(session.memory, in_thread=self.sessions.write_in_thread)
            turn = run_turn(session.memory, backend, new, options, stream=chat.stream, archive=archive, system=prompt)
            self.in_flight += 1
            try:
                async for item in turn:
                    if not isinstance(item, str):
                        self._note(item, outcome, "session")
                    if isinstance(item, Completion):
                        _seed(estimate, session.memory)
                        session.archived(prompt)
                        outcome.archived = len(session.memory)
                        self.metrics.count("finite_memory_archived_messages_total", len(new) + 1 + (prompt is not None))
                    yield item
            finally:
                self.in_flight -= 1

    async def _stateless(
        self, chat: ChatRequest, options: dict[str, Any], outcome: _Outcome
    ) -> AsyncIterator[Context | str | Completion]:
        """A stateless turn: the policy trims the whole conversation the request holds."""
        estimate = self.upstream.estimate(chat.model)
        memory = Memory(
            self.config.policy,
            self.config.max_tokens,
            self.config.reserve_output,
            tokenizer=estimate,
            **self.config.policy_options,
        )
        last_user = max((i for i, m in enumerate(chat.messages) if m.role == "user"), default=len(chat.messages))
        try:
            memory.extend(chat.messages[:last_user])
        except ValueError as exc:
            raise bad_request(f"messages: {exc}", param="messages") from None
        backend = self.upstream.backend(chat.model)
        turn = run_turn(memory, backend, chat.messages[last_user:], options, stream=chat.stream, archive=None)
        self.in_flight += 1
        try:
            async for item in turn:
                if not isinstance(item, str):
                    self._note(item, outcome, "stateless")
                yield item
        finally:
            self.in_flight -= 1

    def _note(self, item: Context | Completion, outcome: _Outcome, mode: str) -> None:
        """Keep the turn's context in ``outcome`` and its figures in the metrics."""
        metrics = self.metrics
        if isinstance(item, Context):
            outcome.context = item
            outcome.sent = time.perf_counter()
            metrics.observe("finite_memory_context_tokens", item.tokens)
            metrics.observe("finite_memory_policy_seconds", item.stats.policy_ms / 1000)
            metrics.count("finite_memory_turns_total", mode=mode)
            return
        metrics.observe("finite_memory_upstream_seconds", time.perf_counter() - outcome.sent)
        usage = item.usage
        prompt = usage.get("prompt_tokens")
        if isinstance(prompt, int) and prompt > 0:
            metrics.count("finite_memory_prompt_tokens_total", prompt)
            metrics.count("finite_memory_completion_tokens_total", usage.get("completion_tokens") or 0)
            metrics.count("finite_memory_cached_prompt_tokens_total", item.stats.get("reused_tokens") or 0)

    def _open_memory(self, name: str, estimate: ApproxTokenizer) -> Memory:
        tokenizer = ApproxTokenizer()
        tokenizer.load_state(estimate.state())
        config = self.config
        return Memory(
            config.policy,
            config.max_tokens,
            config.reserve_output,
            tokenizer=tokenizer,
            store=self.store,
            session=name,
            **config.policy_options,
        )

    def _memory_reserve(self) -> int:
        reserve = self.config.reserve_output
        return reserve if reserve is not None else min(1024, self.config.max_tokens // 4)

    # -- replies ------------------------------------------------------------------------------

    async def _whole(
        self, events: AsyncIterator[Context | str | Completion], outcome: _Outcome, rid: str, model: str
    ) -> Response:
        completion = None
        try:
            async for item in events:
                if isinstance(item, Completion):
                    completion = item
        finally:
            await events.aclose()  # type: ignore[attr-defined]
        assert completion is not None and outcome.context is not None
        return _json(200, completion_body(rid, model, completion), _turn_headers(rid, outcome, completion))

    async def _streamed(
        self,
        events: AsyncIterator[Context | str | Completion],
        outcome: _Outcome,
        rid: str,
        model: str,
        include_usage: bool,
    ) -> Response:
        # Wait for the first piece before answering, so a busy session or a failed upstream
        # call gets its own status (409, 502...) rather than an error inside a 200 stream.
        first: list[str | Completion] = []
        try:
            async for item in events:
                if not isinstance(item, Context):
                    first.append(item)
                    break
        except BaseException:
            await events.aclose()  # type: ignore[attr-defined]
            raise
        assert outcome.context is not None

        encoder = SSEEncoder(rid, model, include_usage)

        def encode(item: str | Completion) -> bytes:
            return encoder.piece(item) if isinstance(item, str) else encoder.finish(item, _figures(outcome, item))

        async def body() -> AsyncIterator[bytes]:
            try:
                yield encoder.start()
                for piece in first:
                    yield encode(piece)
                async for item in events:
                    if not isinstance(item, Context):
                        yield encode(item)
            except asyncio.CancelledError:
                self._count_error("client_disconnected")
                raise
            except Exception as exc:  # the stream already started: the error goes in it
                yield sse_error(self._error(exc))
            finally:
                await events.aclose()  # type: ignore[attr-defined]
                self.metrics.write_snapshot(every=1.0)

        headers = _turn_headers(rid, outcome, None)
        return _ClosingStream(body(), headers=headers, media_type="text/event-stream")

    # -- requests and errors ----------------------------------------------------------------

    def _reply_id(self) -> str:
        """A reply id unique across processes and restarts, with no system call per reply."""
        self._replies += 1
        return f"chatcmpl-{self._id_prefix}{self._replies:08x}"

    def _tenant(self, request: Request) -> str | None:
        if self.tenants is None:
            return None
        return self.tenants.authenticate(request.headers.get("authorization"))

    async def _body(self, request: Request) -> bytes:
        limit = self.config.max_body_bytes
        declared = request.headers.get("content-length")
        too_large = ProxyError(413, f"the request body is over the limit of {limit:,} bytes", code="request_too_large")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
        return b"".join(chunks)

    def _error(self, exc: BaseException) -> ProxyError:
        """The error response for any failure of a request (logged; counted by kind)."""
        if isinstance(exc, ProxyError):
            error = exc
        elif isinstance(exc, BackendError):
            error = upstream_error(exc, self.upstream.redact)
            logger.warning("%s", error.message)
        elif isinstance(exc, StoreConflict):
            error = session_busy(
                "another request on this session finished first, so this turn was not archived; "
                "send it again to continue after that turn",
                retry_after=0,
            )
        elif isinstance(exc, StoreError):
            logger.error("store failure: %s", exc)
            error = ProxyError(503, f"the session store failed: {exc}", code="store_error", type="server_error")
        elif isinstance(exc, (ValueError, TypeError)):  # a message the memory refuses (a tool result with no call)
            error = bad_request(str(exc), param="messages")
        else:
            logger.exception("internal error")
            error = ProxyError(
                500, "internal error in the proxy (see its log)", code="internal_error", type="server_error"
            )
        self._count_error(error.code)
        return error

    def _count_error(self, kind: str) -> None:
        self.metrics.count("finite_memory_errors_total", kind=kind)

    def handler(
        self, route: str, work: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        """``work`` with every failure turned into an OpenAI-style error response, and counted."""

        async def handle(request: Request) -> Response:
            try:
                response = await work(request)
            except asyncio.CancelledError:
                self._count_error("client_disconnected")
                raise
            except Exception as exc:
                error = self._error(exc)
                response = Response(error.encoded(), error.status, headers=error.headers, media_type=_JSON)
            self.metrics.count("finite_memory_requests_total", route=route, status=str(response.status_code))
            self.metrics.write_snapshot(every=1.0)
            return response

        return handle

    async def aclose(self) -> None:
        await self.upstream.aclose()
        self.store.close()
        self.metrics.write_snapshot()


def create_app(config: ServeConfig) -> Starlette:
    """The proxy as an ASGI application (run it with uvicorn, or mount it in another app)."""
    proxy = Proxy(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await proxy.aclose()

    routes = [
        Route("/v1/chat/completions", proxy.handler("chat", proxy.chat_completions), methods=["POST"]),
        Route("/v1/models", proxy.handler("models", proxy.models), methods=["GET"]),
        Route("/health", proxy.handler("health", proxy.health), methods=["GET"]),
        Route("/metrics", proxy.handler("metrics", proxy.metrics_text), methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            error = ProxyError(404, f"no route {request.method} {request.url.path}", code="unknown_url")
        else:
            error = ProxyError(
                exc.status_code, f"{request.method} is not allowed on {request.url.path}", code="method_not_allowed"
            )
        proxy._count_error(error.code)
        return Response(error.encoded(), error.status, headers=dict(exc.headers or {}), media_type=_JSON)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.state.proxy = proxy
    return app


def app_from_env() -> Starlette:
    """The app of a worker process: its configuration comes in ``$FINITE_MEMORY_SERVE_CONFIG``."""
    return create_app(ServeConfig.from_json(os.environ[CONFIG_ENV]))


class _ClosingStream(StreamingResponse):
    """A streamed response whose body is closed however the response ends (a client that left)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.body_iterator.aclose()  # type: ignore[attr-defined]


async def _until_disconnect(request: Request, work: Awaitable[Response]) -> Response:
    """Run ``work``, cancelling it when the client disconnects first (its turn is then not archived)."""
    task = asyncio.ensure_future(work)

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watch = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise ProxyError(499, "the client closed the connection before the reply", code="client_disconnected")
    return task.result()


def _seed(estimate: ApproxTokenizer, memory: Memory) -> None:
    """Keep the model's estimate at the calibration of its latest turn: new sessions start from it."""
    if isinstance(memory.tokenizer, ApproxTokenizer):
        estimate.load_state(memory.tokenizer.state())


def _figures(outcome: _Outcome, completion: Completion | None) -> dict[str, int]:
    """The turn's figures: context tokens, session size (when archived), cached prompt tokens (when reported)."""
    figures = {}
    if outcome.context is not None:
        figures["context_tokens"] = outcome.context.tokens
    if outcome.archived is not None:
        figures["archived"] = outcome.archived
    if completion is not None and "reused_tokens" in completion.stats:
        figures["cached_tokens"] = int(completion.stats["reused_tokens"])
    return figures


def _turn_headers(rid: str, outcome: _Outcome, completion: Completion | None) -> dict[str, str]:
    headers = {"x-request-id": rid}
    for name, value in _figures(outcome, completion).items():
        headers[f"x-finite-memory-{name.replace('_', '-')}"] = str(value)
    return headers


def _json(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(raw, status, headers=headers, media_type=_JSON)
