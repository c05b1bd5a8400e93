"""What a proxy is configured with: the upstream, the memory, the store, the limits."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

#: The environment variable that hands the configuration to worker processes (``--workers``).
CONFIG_ENV = "FINITE_MEMORY_SERVE_CONFIG"

#: The request header that makes a request stateful: its messages are that session's new ones.
SESSION_HEADER = "x-finite-memory-session"


@dataclass(frozen=True)
class ServeConfig:
    """A proxy's configuration (the ``finite-memory serve`` flags).

    Args:
        backend: ``"openai:MODEL"`` or ``"anthropic:MODEL"``; the model is the default
            for requests that name none (a request's ``model`` passes through).
        max_tokens: the model's context budget, prompt and reply together.
        policy: the memory policy (``"sliding"``, ``"hybrid"``...).
        reserve_output: tokens kept for the reply (default: a quarter of ``max_tokens``,
            at most 1,024); also the reply length when a request gives no ``max_tokens``.
        base_url: the upstream's API root (``http://vllm:8000/v1``); default: the
            backend's (``$OPENAI_BASE_URL``, then OpenAI's).
        store: where sessions live (``sqlite:///path.db``, ``postgresql://...``,
            ``memory://``).
        policy_options: options for the policy (``--option key=value``).
        api_keys_file: a file of ``key tenant`` lines; when set, every request needs
            ``Authorization: Bearer <key>`` and sessions are namespaced by tenant.
        max_body_bytes: the largest request body accepted (413 above it).
        session_wait: seconds a request waits for a turn already running on its session
            before it is answered 409.
        max_sessions: sessions each process holds in memory (least recently used out).
        max_cached_messages: archived messages each process holds in memory, all its
            sessions together (least recently used sessions out).
        upstream_timeout: seconds to wait for the upstream (per read, not per reply).
        upstream_retries: retries of a failed upstream call (connect errors, 429, 5xx).
        metrics_dir: a folder where worker processes pool their metrics (``--workers``).
    """

    backend: str
    max_tokens: int
    policy: str = "sliding"
    reserve_output: int | None = None
    base_url: str | None = None
    store: str = "memory://"
    policy_options: dict[str, Any] = field(default_factory=dict)
    api_keys_file: str | None = None
    max_body_bytes: int = 16 * 1024 * 1024
    session_wait: float = 30.0
    max_sessions: int = 1024
    max_cached_messages: int = 1_000_000
    upstream_timeout: float = 600.0
    upstream_retries: int = 2
    metrics_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_body_bytes", "max_sessions", "max_cached_messages"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.upstream_retries, int) or self.upstream_retries < 0:
            raise ValueError(f"upstream_retries must be an integer >= 0, got {self.upstream_retries!r}")
        for name in ("session_wait", "upstream_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        return cls(**json.loads(text))


def parse_option(text: str) -> tuple[str, Any]:
    """A ``--option key=value`` pair; the value is read as JSON when it can be (``3``, ``0.5``, ``true``)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise ValueError(f"--option takes key=value (for example sink_turns=2), got {text!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value
