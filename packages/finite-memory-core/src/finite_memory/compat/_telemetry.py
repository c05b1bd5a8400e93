"""The reference's telemetry hooks: callbacks a ``CompleteFiniteMemoryLLM`` calls each turn."""

from __future__ import annotations

from importlib import import_module
from typing import Any


class TelemetryHook:
    """Override what you need; every method does nothing by default.

    Each successful :meth:`~finite_memory.compat.CompleteFiniteMemoryLLM.chat` calls
    ``on_chat_start``, ``on_policy_execute``, ``on_cache_hit`` or ``on_cache_miss`` (when
    the backend reports KV-cache reuse) and ``on_chat_complete``, in that order. A
    turn that fails calls ``on_chat_start`` only. Hooks are looked up by name, so any
    object with some of these methods works too.
    """

    def on_chat_start(self, message: str) -> None:
        """A chat turn starts with ``message``."""

    def on_chat_complete(self, stats: dict[str, Any], latency_ms: float) -> None:
        """A turn finished; ``stats`` are the running totals (``MemoryStats`` as a dict)."""

    def on_policy_execute(self, policy: str, latency_ms: float, tokens_before: int, tokens_after: int) -> None:
        """The policy built a context of ``tokens_after`` tokens from a conversation of ``tokens_before``."""

    def on_cache_hit(self, prefix_len: int, delta_len: int) -> None:
        """The prompt reused ``prefix_len`` cached tokens and ran ``delta_len`` new ones."""

    def on_cache_miss(self, context_len: int) -> None:
        """The prompt (``context_len`` tokens) ran without reusing a cache."""


class PrometheusHook(TelemetryHook):
    """Prometheus metrics for the chat: needs ``prometheus_client`` (``pip install prometheus-client``).

    Args:
        registry: where the metrics register; ``prometheus_client``'s default registry
            when omitted (one hook per process then, as metric names are unique).

    Metrics: ``finite_memory_chat_total``, ``finite_memory_chat_latency_seconds``,
    ``finite_memory_policy_latency_seconds{policy}``, ``finite_memory_tokens_evicted_total``,
    ``finite_memory_cache_hits_total``, ``finite_memory_cache_misses_total`` and
    ``finite_memory_buffer_size`` (tokens of the last context).
    """

    def __init__(self, registry: Any = None) -> None:
        try:
            prometheus = import_module("prometheus_client")
        except ImportError:
            raise ImportError("PrometheusHook needs prometheus_client: pip install prometheus-client") from None
        where = {"registry": registry if registry is not None else prometheus.REGISTRY}
        self.chat_total = prometheus.Counter("finite_memory_chat_total", "Chat turns", **where)
        self.chat_latency = prometheus.Histogram("finite_memory_chat_latency_seconds", "Chat turn latency", **where)
        self.policy_latency = prometheus.Histogram(
            "finite_memory_policy_latency_seconds", "Policy latency", ["policy"], **where
        )
        self.tokens_evicted = prometheus.Counter("finite_memory_tokens_evicted_total", "Tokens evicted", **where)
        self.cache_hits = prometheus.Counter("finite_memory_cache_hits_total", "KV-cache hits", **where)
        self.cache_misses = prometheus.Counter("finite_memory_cache_misses_total", "KV-cache misses", **where)
        self.buffer_size = prometheus.Gauge("finite_memory_buffer_size", "Tokens of the last context", **where)
        self._evictions = 0

    def on_chat_complete(self, stats: dict[str, Any], latency_ms: float) -> None:
        self.chat_total.inc()
        self.chat_latency.observe(latency_ms / 1000)
        evictions = int(stats.get("evictions", 0))
        self.tokens_evicted.inc(evictions - self._evictions if evictions >= self._evictions else evictions)
        self._evictions = evictions
        self.buffer_size.set(stats.get("tokens_retained", 0))

    def on_policy_execute(self, policy: str, latency_ms: float, tokens_before: int, tokens_after: int) -> None:
        self.policy_latency.labels(policy=policy).observe(latency_ms / 1000)

    def on_cache_hit(self, prefix_len: int, delta_len: int) -> None:
        self.cache_hits.inc()

    def on_cache_miss(self, context_len: int) -> None:
        self.cache_misses.inc()
