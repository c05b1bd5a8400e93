"""``finite-memory serve``: the command that runs the proxy (registered in ``finite_memory.commands``).

Building the parser imports nothing but the standard library; Starlette and uvicorn load
when the command runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from urllib.parse import urlsplit, urlunsplit

from finite_memory import FiniteMemoryError

from ._config import CONFIG_ENV, ServeConfig, parse_option

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "serve",
        help="an OpenAI-compatible proxy that gives every session a finite memory",
        description=(
            "Serve POST /v1/chat/completions in front of a model server. With the header "
            "X-Finite-Memory-Session a request's messages are that turn's new messages and the "
            "session's memory builds the context; without it the policy trims the messages sent. "
            "The upstream key comes from $OPENAI_API_KEY or $ANTHROPIC_API_KEY."
        ),
    )
    parser.add_argument("--backend", required=True, help="openai:MODEL or anthropic:MODEL (the default model)")
    parser.add_argument("--base-url", default=None, help="the upstream's API root, e.g. http://localhost:8000/v1")
    parser.add_argument("--policy", required=True, help="memory policy: sliding, hybrid, semantic, ...")
    parser.add_argument("--max-tokens", type=int, required=True, help="the model's context budget in tokens")
    parser.add_argument("--reserve-output", type=int, default=None, help="tokens kept for the reply (default: 1/4)")
    parser.add_argument(
        "--store", default=None, help="store URL (default: sqlite:///<user data dir>/chats.db?synchronous=normal)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default: 1)")
    parser.add_argument("--api-keys-file", default=None, help="file of 'KEY TENANT' lines; requires client keys")
    parser.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE", help="a policy option (repeatable)"
    )
    parser.add_argument("--max-body-bytes", type=int, default=16 * 1024 * 1024, help="413 above (default: 16 MiB)")
    parser.add_argument(
        "--session-wait", type=float, default=30.0, help="seconds a turn waits for a busy session before 409 (30)"
    )
    parser.add_argument("--max-sessions", type=int, default=1024, help="sessions each process keeps loaded (1024)")
    parser.add_argument(
        "--max-cached-messages",
        type=int,
        default=1_000_000,
        help="archived messages each process keeps loaded, all sessions together (1,000,000: about 0.7 GB)",
    )
    parser.add_argument("--upstream-timeout", type=float, default=600.0, help="seconds per upstream read (600)")
    parser.add_argument("--upstream-retries", type=int, default=2, help="retries on connect errors, 429, 5xx (2)")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.set_defaults(func=run)


def config_from(args: argparse.Namespace) -> ServeConfig:
    """The proxy's configuration from the command's arguments."""
    if args.store is None:  # the store `finite-memory chat` and `sessions` share
        from finite_memory.cli._args import default_store_path, store_url

        default_store_path().parent.mkdir(parents=True, exist_ok=True)
        # WAL + synchronous=normal: a killed or crashed proxy loses nothing; a power cut may lose the last turns
        args.store = store_url(None) + "?synchronous=normal"
    return ServeConfig(
        backend=args.backend,
        base_url=args.base_url,
        policy=args.policy,
        max_tokens=args.max_tokens,
        reserve_output=args.reserve_output,
        store=args.store,
        policy_options=dict(parse_option(o) for o in args.option),
        api_keys_file=args.api_keys_file,
        max_body_bytes=args.max_body_bytes,
        session_wait=args.session_wait,
        max_sessions=args.max_sessions,
        max_cached_messages=args.max_cached_messages,
        upstream_timeout=args.upstream_timeout,
        upstream_retries=args.upstream_retries,
    )


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn
    except ImportError:
        raise FiniteMemoryError("finite-memory serve needs its extra: pip install 'finite-memory-api[serve]'") from None
    from ._app import create_app

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be from 0 to 65535, got {args.port}")
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT)
    config = config_from(args)
    app = create_app(config)  # a bad backend, policy, store or keys file fails here, in one line
    where = f"http://{args.host}:{args.port}/v1"
    print(
        f"finite-memory serve: {config.backend} at {where} (policy {config.policy}, {config.max_tokens} tokens, "
        f"store {redacted_url(config.store)}, {args.workers} worker{'s' if args.workers > 1 else ''})",
        file=sys.stderr,
        flush=True,
    )
    options = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "access_log": args.access_log,
        "timeout_graceful_shutdown": 30,
        # longer than the idle timeout of the load balancers in front (60 s on the common ones), so they
        # never reuse a connection the proxy is closing
        "timeout_keep_alive": 75,
        "server_header": False,
    }
    if args.workers == 1:
        uvicorn.run(app, **options)
        return 0
    app.state.proxy.store.close()  # each worker opens its own connections
    with tempfile.TemporaryDirectory(prefix="finite-memory-metrics-") as metrics_dir:
        shared = ServeConfig(**{**config.__dict__, "metrics_dir": metrics_dir})
        os.environ[CONFIG_ENV] = shared.to_json()
        uvicorn.run("finite_memory_api.serve._app:app_from_env", factory=True, workers=args.workers, **options)
    return 0


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
