"""Token counting: the ``Tokenizer`` protocol and the dependency-free ``ApproxTokenizer``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._message import Message


@runtime_checkable
class Tokenizer(Protocol):
    """What the memory needs to count tokens.

    ``count_messages`` counts a whole prompt in the backend's chat format: the
    per-message overhead and the generation prompt included. A tokenizer whose counts
    can change (calibration) exposes an int ``revision`` that grows on each change, so
    cached counts are refreshed.
    """

    def count(self, text: str) -> int:
        """Tokens in ``text`` alone."""
        ...

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens of ``messages`` rendered as a prompt, ready for the model to answer."""
        ...


#: How much an earlier calibration observation weighs against the next one.
_DECAY = 0.5


class ApproxTokenizer:
    """A fast estimate of BPE token counts that calibrates itself from real usage.

    The raw estimate is one token per four characters of ASCII text, plus one per two
    extra UTF-8 bytes (CJK, emoji). ``calibrate()`` fits the scale of that estimate to
    the prompt token counts a backend reports, so the budget tracks the real tokenizer.
    """

    def __init__(self, *, per_message: int = 4, per_prompt: int = 3, scale: float = 1.0) -> None:
        if per_message < 0 or per_prompt < 0:
            raise ValueError("per_message and per_prompt must be >= 0")
        if not (0.05 <= scale <= 20):
            raise ValueError(f"scale must be between 0.05 and 20, got {scale}")
        self.per_message = per_message
        self.per_prompt = per_prompt
        self.scale = scale
        self.revision = 0
        self._revision_scale = scale
        self._seen_tokens = 0.0
        self._seen_raw = 0.0

    def __repr__(self) -> str:
        return f"ApproxTokenizer(scale={self.scale:.4f}, per_message={self.per_message}, per_prompt={self.per_prompt})"

    def count(self, text: str) -> int:
        return math.ceil(_raw(text) * self.scale)

    def count_message(self, message: Message) -> int:
        """Tokens one message adds to a prompt (content, name, tool calls and overhead)."""
        return self.per_message + math.ceil(_message_raw(message) * self.scale)

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.per_prompt + sum(self.count_message(m) for m in messages)

    def calibrate(self, messages: Sequence[Message], prompt_tokens: int) -> None:
        """Fit the scale to a prompt whose exact token count a backend reported.

        Observations accumulate, each older one weighing half as much as the one after
        it: a prompt holds most of the previous prompt, so a plain sum would let the first
        messages of a conversation dominate the fit forever. The ``revision`` grows only
        when the scale moves by more than 1 %, so cached counts stay valid between small
        corrections.
        """
        if not isinstance(prompt_tokens, int) or prompt_tokens <= 0:
            raise ValueError(f"prompt_tokens must be a positive int, got {prompt_tokens!r}")
        raw = sum(_message_raw(m) for m in messages)
        # count_message rounds each message up, half a token on average: leave that out of the fit
        content_tokens = prompt_tokens - self.per_prompt - (self.per_message + 0.5) * len(messages)
        if raw <= 0 or content_tokens <= 0:
            return
        self._seen_tokens = self._seen_tokens * _DECAY + content_tokens
        self._seen_raw = self._seen_raw * _DECAY + raw
        self.scale = min(20.0, max(0.05, self._seen_tokens / self._seen_raw))
        if abs(self.scale - self._revision_scale) > 0.01 * self._revision_scale:
            self._revision_scale = self.scale
            self.revision += 1

    def state(self) -> dict[str, float]:
        """The calibration, as plain numbers for a checkpoint."""
        return {"scale": self.scale, "seen_tokens": self._seen_tokens, "seen_raw": self._seen_raw}

    def load_state(self, state: dict[str, float]) -> None:
        """Restore what :meth:`state` returned."""
        self.scale = float(state["scale"])
        self._seen_tokens = float(state.get("seen_tokens", 0.0))
        self._seen_raw = float(state.get("seen_raw", 0.0))
        self._revision_scale = self.scale
        self.revision += 1


def _raw(text: str) -> float:
    extra_bytes = len(text.encode("utf-8", "surrogatepass")) - len(text)
    return len(text) / 4 + extra_bytes / 2


def _message_raw(message: Message) -> float:
    raw = _raw(message.content)
    if message.name:
        raw += 1 + _raw(message.name)
    if message.tool_calls:
        raw += _raw(json.dumps(message.tool_calls, ensure_ascii=False))
    if message.tool_call_id:
        raw += _raw(message.tool_call_id)
    return raw
