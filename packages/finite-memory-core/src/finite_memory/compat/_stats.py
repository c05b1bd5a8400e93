"""The reference's ``MemoryStats`` totals, and how a chat turn adds to them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields

from .._context import Context
from .._counting import TokenCounter
from .._message import Message


@dataclass
class MemoryStats:
    """Running totals of a :class:`~finite_memory.compat.CompleteFiniteMemoryLLM`, under the reference's names.

    - ``tokens_seen``: tokens of every message archived, user and assistant (the
      reference counted the user's only).
    - ``tokens_retained``: tokens of the last context sent to the model.
    - ``compression_ratio``: ``tokens_seen / tokens_retained``.
    - ``evictions``: tokens that left the context: in the previous context or reply,
      not in this one (retrieval may bring them back later).
    - ``importance_evictions``: the same, counted while the policy is ``importance``.
    - ``summaries_created``: times the running summary changed (``rolling_summary``, ``hybrid``).
    - ``cache_hits``: turns whose prompt reused the backend's KV cache.
    - ``policy_latency_ms``: the last context's policy time.
    - ``total_policy_calls``: calls into the policy, one per message archived and one per
      context built.
    - ``fallback_count``: contexts the sliding window built after the policy overran
      ``max_policy_ms``.
    - ``clusters_merged``, ``anchor_cache_hits``, ``sparsity_ratio``: kept for the
      reference's readers; nothing here clusters spans or slices token anchors, so they
      stay 0, 0 and 1.0.
    """

    tokens_seen: int = 0
    tokens_retained: int = 0
    cache_hits: int = 0
    evictions: int = 0
    compression_ratio: float = 1.0
    summaries_created: int = 0
    clusters_merged: int = 0
    importance_evictions: int = 0
    sparsity_ratio: float = 1.0
    policy_latency_ms: float = 0.0
    total_policy_calls: int = 0
    fallback_count: int = 0
    anchor_cache_hits: int = 0

    @classmethod
    def from_dict(cls, data: object) -> MemoryStats:
        """Stats saved with ``dataclasses.asdict``; unknown fields and bad types raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"stats must be an object, not {type(data).__name__}")
        known = {f.name: f.type for f in fields(cls)}
        unknown = set(data) - set(known)
        if unknown:
            raise ValueError(f"unknown stats fields: {', '.join(sorted(unknown))}")
        for name, value in data.items():
            wanted = (int, float) if known[name] == "float" else (int,)
            if not isinstance(value, wanted) or isinstance(value, bool) or not 0 <= value < math.inf:
                raise ValueError(f"stats.{name} must be a finite number >= 0, got {value!r}")
        return cls(**data)


class TurnLedger:
    """Adds each finished chat turn to a :class:`MemoryStats`.

    It remembers the ids and token costs of what the model saw last (the context and
    the reply), so a turn's evictions cost O(context), never O(history).
    """

    def __init__(self, stats: MemoryStats) -> None:
        self.stats = stats
        self._window: dict[int, int] = {}

    def record(
        self,
        context: Context,
        added: Sequence[Message],
        counter: TokenCounter,
        *,
        importance: bool,
        summary_changed: bool,
        reused_tokens: int,
    ) -> int:
        """Count one turn: its ``context``, the messages it ``added`` to the archive. Returns the tokens evicted."""
        stats = self.stats
        added_costs = {m.id: counter.message(m) for m in added if m.id is not None}
        kept = {m.id: counter.message(m) for m in context.messages if m.id is not None}
        evicted = sum(cost for message_id, cost in self._window.items() if message_id not in kept)
        self._window = {**kept, **added_costs}
        stats.tokens_seen += sum(added_costs.values())
        stats.tokens_retained = context.tokens
        stats.compression_ratio = stats.tokens_seen / max(1, context.tokens)
        stats.evictions += evicted
        if importance:
            stats.importance_evictions += evicted
        stats.summaries_created += int(summary_changed)
        stats.cache_hits += int(reused_tokens > 0)
        stats.policy_latency_ms = context.stats.policy_ms
        stats.total_policy_calls += 1 + len(added)
        stats.fallback_count += int(context.stats.fallback)
        return evicted
