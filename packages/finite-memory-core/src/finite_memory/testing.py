"""A deterministic backend for tests, docs and the demo. It is not a language model.

``EchoBackend`` answers every prompt with a fixed function of it, reports token usage
with its own counter, and can be told to fail, so code that uses a ``Chat`` can be
tested without a key, a network or a download. Registered as the ``echo`` scheme:
``load_backend("echo:test")``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from ._backend import Completion, SyncBackend
from ._errors import BackendError
from ._message import Message


class EchoBackend(SyncBackend):
    """Replies ``"echo: <last user message>"`` (cut to ``max_new_tokens`` words).

    Args:
        model: a label, kept in ``name``.
        fail_after: raise :class:`BackendError` after yielding this many stream pieces
            (or at once from ``complete`` when 0); ``None`` never fails.
        tokens_per_word: the ratio its usage counter reports, so calibration can be
            exercised against a "real" tokenizer that differs from the estimate.
        delay: seconds to sleep per piece, to simulate a slow model.
    """

    def __init__(
        self, model: str = "test", *, fail_after: int | None = None, tokens_per_word: float = 1.3, delay: float = 0.0
    ) -> None:
        self.name = f"echo:{model}"
        self.fail_after = fail_after
        self.tokens_per_word = tokens_per_word
        self.delay = delay
        self.calls: list[list[Message]] = []

    def __repr__(self) -> str:
        return f"EchoBackend(name={self.name!r})"

    def _count(self, messages: Sequence[Message]) -> int:
        words = sum(len(m.content.split()) for m in messages)
        return round(words * self.tokens_per_word) + 4 * len(messages) + 3

    def _reply(self, messages: Sequence[Message], options: dict[str, Any]) -> list[str]:
        last_user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        words = ["echo:", *last_user.split()]
        limit = options.get("max_new_tokens")
        return words[:limit] if limit else words

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion:
        if self.fail_after == 0:
            raise BackendError("EchoBackend was told to fail", status=500)
        pieces = list(self._reply(messages, options))
        self.calls.append(list(messages))
        return self._completion(messages, pieces)

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]:
        self.calls.append(list(messages))
        pieces = self._reply(messages, options)
        for i, word in enumerate(pieces):
            if self.fail_after is not None and i >= self.fail_after:
                raise BackendError(f"EchoBackend was told to fail after {self.fail_after} pieces", status=500)
            if self.delay:
                time.sleep(self.delay)
            yield word if i == 0 else " " + word
        yield self._completion(messages, pieces)

    def _completion(self, messages: Sequence[Message], pieces: list[str]) -> Completion:
        text = " ".join(pieces)
        usage = {"prompt_tokens": self._count(messages), "completion_tokens": len(pieces)}
        return Completion(text=text, finish_reason="stop", usage=usage, stats={"generated_tokens": len(pieces)})


def echo_backend(model: str, **options: Any) -> EchoBackend:
    """Entry-point factory for the ``echo`` scheme."""
    return EchoBackend(model, **options)
