"""The reference's token-level ``ContextBuilder``: the recent tail plus sentence anchors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

#: Characters that end a sentence: the token after one is an anchor.
_ENDS = frozenset(".!?\n")

#: Token sequences whose anchors are remembered at once.
_CACHED = 100


class ContextBuilder:
    """Cut a token sequence to ``max_tokens`` ids, keeping its recent tail and its sentence starts.

    ``build(backend, buffer, policy_out)`` returns ``(ids, anchor_cache_hits)``:
    ``policy_out`` itself when it fits; otherwise its last ``window_size`` ids, plus the
    first and last id and each id that follows one whose text (``backend.decode``) holds
    a sentence end, cut to the newest ``max_tokens`` of those. The anchors of the last
    100 sequences are cached; ``anchor_cache_hits`` is 1 when this call used the cache.
    ``buffer`` is accepted for the reference's signature and not used, as there.
    """

    def __init__(self, max_tokens: int, window_size: int = 256) -> None:
        for name, value in (("max_tokens", max_tokens), ("window_size", window_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.max_tokens = max_tokens
        self.window_size = window_size
        self._anchors: OrderedDict[tuple[int, ...], list[int]] = OrderedDict()
        self._ends: dict[int, bool] = {}
        self._backend: int | None = None

    def build(self, backend: Any, buffer: Sequence[int], policy_out: Sequence[int]) -> tuple[list[int], int]:
        ids = [int(t) for t in policy_out]
        if len(ids) <= self.max_tokens:
            return ids, 0
        anchors, hit = self.anchors(backend, ids)
        keep = set(range(max(0, len(ids) - self.window_size), len(ids))).union(anchors)
        kept = sorted(keep)[-self.max_tokens :] if self.max_tokens else []
        return [ids[i] for i in kept], int(hit)

    def anchors(self, backend: Any, ids: list[int]) -> tuple[list[int], bool]:
        """The sentence-start positions of ``ids`` and whether they came from the cache."""
        if self._backend != id(backend):
            self._backend = id(backend)
            self._ends.clear()
            self._anchors.clear()
        key = tuple(ids)
        cached = self._anchors.get(key)
        if cached is not None:
            self._anchors.move_to_end(key)
            return cached, True
        found = {0, len(ids) - 1}
        found.update(i + 1 for i, token in enumerate(ids[:-1]) if self._ends_sentence(backend, token))
        result = sorted(found)
        self._anchors[key] = result
        if len(self._anchors) > _CACHED:
            self._anchors.popitem(last=False)
        return result, False

    def _ends_sentence(self, backend: Any, token: int) -> bool:
        ends = self._ends.get(token)
        if ends is None:
            ends = self._ends[token] = not _ENDS.isdisjoint(str(backend.decode([token])))
        return ends
