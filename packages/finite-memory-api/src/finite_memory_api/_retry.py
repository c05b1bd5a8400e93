"""When to retry a request, and how long to wait first."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

#: HTTP statuses worth another try: rate limits and server errors. Other 4xx never are.
RETRY_STATUSES = frozenset({429, *range(500, 600)})


@dataclass(frozen=True, slots=True)
class Retry:
    """Retries with exponential backoff and jitter.

    Connect errors, timeouts, 429 and 5xx are retried up to ``max_retries`` times; the
    n-th wait is ``backoff * 2**n`` capped at ``max_backoff``, each scaled by a random
    factor in ``[1 - jitter, 1]`` so that many clients do not retry in step. A server's
    ``Retry-After`` (seconds or an HTTP date; ``retry-after-ms`` too) replaces the
    computed wait when it is at most ``max_retry_after`` seconds; a longer one ends
    the retries, since waiting minutes inside a chat turn is worse than an error.
    """

    max_retries: int = 2
    backoff: float = 0.5
    max_backoff: float = 8.0
    jitter: float = 0.5
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise ValueError(f"max_retries must be an int >= 0, got {self.max_retries!r}")
        for name in ("backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if not (0 <= self.jitter <= 1):
            raise ValueError(f"jitter must be between 0 and 1, got {self.jitter!r}")

    def delay(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before retry number ``attempt`` (0-based), or ``None`` to give up."""
        if attempt >= self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_retry_after else None
        wait = min(self.max_backoff, self.backoff * 2.0**attempt)
        return wait * (1 - self.jitter * random.random())


def retry_after(headers: Any) -> float | None:
    """The wait a response asks for in ``retry-after-ms`` or ``Retry-After``, in seconds."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None
