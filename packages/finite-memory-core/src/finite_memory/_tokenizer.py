"""Token counting: the ``Tokenizer`` protocol and the dependency-free ``ApproxTokenizer``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._message import Message


@runtime_checkable
class Tokenizer(Protocol):
    """What the memory needs to count tokens.

    ``count_messages`` counts a whole prompt in the backend's chat format: the
    per-message overhead and the generation prompt included. A tokenizer whose counts
    can change (calibration) exposes an int ``revision`` that grows on each change, so
    cached counts are refreshed. A tokenizer whose prompt count is always the empty
    prompt's count plus its messages' ``count_message`` counts may say so with
    ``additive = True``: the memory then sums cached per-message counts instead of
    counting each whole prompt again.
    """

    def count(self, text: str) -> int:
        """Tokens in ``text`` alone."""
        ...

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens of ``messages`` rendered as a prompt, ready for the model to answer."""
        ...


#: How much an earlier calibration observation weighs against the next one.
_DECAY = 0.5
#: How far one observation may move the scale, up and down, once calibration started. An
#: underestimate is what overruns a budget, so the fit rises fast and falls slowly: a server
#: that reports absurdly few tokens can only shrink the scale by a bounded step per reply.
_STEP_UP, _STEP_DOWN = 2.0, 0.75
#: How far the first observation may move the scale from the characters-over-four prior.
_FIRST_STEP = 4.0
#: The safety margin: a prior after the first observation, then learned from the last
#: ``_ERRORS`` relative errors of the fit (its worst underestimate plus a floor), within a cap.
_MARGIN_PRIOR, _MARGIN_FLOOR, _MARGIN_CAP, _ERRORS = 0.1, 0.02, 0.5, 8
#: The largest per-message or per-prompt overhead a chat format plausibly has.
MAX_OVERHEAD = 256


class ApproxTokenizer:
    """A fast estimate of BPE token counts that calibrates itself from real usage.

    The raw estimate is one token per four characters of ASCII text, plus one per two
    extra UTF-8 bytes (CJK, emoji). ``calibrate()`` fits the scale of that estimate to
    the prompt token counts a backend reports, so the budget tracks the real tokenizer,
    and learns a safety ``margin`` from the fit's own recent errors: counts are
    ``scale * (1 + margin)`` times the raw estimate, so that a context counted within the
    budget is within it for the server too, save for rare, small misses. ``samples`` is
    the number of observations so far (0: uncalibrated, no margin).
    """

    #: ``count_messages`` is ``per_prompt`` plus the messages' ``count_message``.
    additive = True

    def __init__(self, *, per_message: int = 4, per_prompt: int = 3, scale: float = 1.0) -> None:
        for name, value in (("per_message", per_message), ("per_prompt", per_prompt)):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OVERHEAD:
                raise ValueError(f"{name} must be an int between 0 and {MAX_OVERHEAD}, got {value!r}")
        if not isinstance(scale, (int, float)) or not (0.05 <= scale <= 20):
            raise ValueError(f"scale must be between 0.05 and 20, got {scale}")
        self.per_message = per_message
        self.per_prompt = per_prompt
        self.scale = float(scale)
        self.margin = 0.0
        self.samples = 0
        self.revision = 0
        self._effective = self.scale
        self._revision_scale = self.scale
        self._seen_tokens = 0.0
        self._seen_raw = 0.0
        self._errors: list[float] = []

    def __repr__(self) -> str:
        return (
            f"ApproxTokenizer(scale={self.scale:.4f}, margin={self.margin:.3f}, "
            f"per_message={self.per_message}, per_prompt={self.per_prompt})"
        )

    def count(self, text: str) -> int:
        return math.ceil(_raw(text) * self._effective)

    def count_message(self, message: Message) -> int:
        """Tokens one message adds to a prompt (content, name, tool calls and overhead)."""
        return self.per_message + math.ceil(_message_raw(message) * self._effective)

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.per_prompt + sum(self.count_message(m) for m in messages)

    def calibrate(self, messages: Sequence[Message], prompt_tokens: int) -> None:
        """Fit the scale to a prompt whose exact token count a backend reported.

        Observations accumulate, each older one weighing half as much as the one after
        it: a prompt holds most of the previous prompt, so a plain sum would let the first
        messages of a conversation dominate the fit forever. One observation moves the
        scale a bounded step (see ``_STEP_UP``/``_STEP_DOWN``), so one bad report cannot
        wreck the budget. The error each observation shows against the fit before it
        feeds the margin. The ``revision`` grows only when counts move by more than 1 %,
        so cached counts stay valid between small corrections.
        """
        if not isinstance(prompt_tokens, int) or isinstance(prompt_tokens, bool) or prompt_tokens <= 0:
            raise ValueError(f"prompt_tokens must be a positive int, got {prompt_tokens!r}")
        raw = sum(_message_raw(m) for m in messages)
        # count_message rounds each message up, half a token on average: leave that out of the fit
        content_tokens = prompt_tokens - self.per_prompt - (self.per_message + 0.5) * len(messages)
        if raw <= 0 or content_tokens <= 0:
            return
        observed = content_tokens / raw
        if self.samples:
            self._errors = [*self._errors, observed / self.scale - 1][-_ERRORS:]
            low, high = self.scale * _STEP_DOWN, self.scale * _STEP_UP
        else:
            low, high = self.scale / _FIRST_STEP, self.scale * _FIRST_STEP
        bounded = min(high, max(low, observed))
        self._seen_tokens = self._seen_tokens * _DECAY + bounded * raw
        self._seen_raw = self._seen_raw * _DECAY + raw
        self.scale = min(20.0, max(0.05, self._seen_tokens / self._seen_raw))
        self.samples += 1
        self.margin = self._learned_margin()
        self._refresh()

    def _learned_margin(self) -> float:
        if not self._errors:
            return _MARGIN_PRIOR
        return min(_MARGIN_CAP, max(0.0, max(self._errors)) + _MARGIN_FLOOR)

    def _refresh(self) -> None:
        self._effective = self.scale * (1 + self.margin)
        if abs(self._effective - self._revision_scale) > 0.01 * self._revision_scale:
            self._revision_scale = self._effective
            self.revision += 1

    def state(self) -> dict[str, Any]:
        """The calibration, as plain JSON data for a checkpoint or a store."""
        return {
            "scale": self.scale,
            "seen_tokens": self._seen_tokens,
            "seen_raw": self._seen_raw,
            "margin": self.margin,
            "samples": self.samples,
            "errors": list(self._errors),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned; raises ``ValueError`` (changing nothing) for a bad one.

        A state from an older version (no ``margin``) counts as calibrated once when it
        saw any prompt.
        """
        if not isinstance(state, dict):
            raise ValueError(f"a calibration must be a dict, not {type(state).__name__}")
        scale = _number(state, "scale", 0.05, 20.0)
        seen_tokens = _number(state, "seen_tokens", 0.0, 1e15, default=0.0)
        seen_raw = _number(state, "seen_raw", 0.0, 1e15, default=0.0)
        samples = state.get("samples", 1 if seen_raw > 0 else 0)
        if not isinstance(samples, int) or isinstance(samples, bool) or not 0 <= samples <= 10**12:
            raise ValueError(f"calibration samples must be an int >= 0, got {samples!r}")
        margin = _number(state, "margin", 0.0, _MARGIN_CAP, default=_MARGIN_PRIOR if samples else 0.0)
        errors = state.get("errors", [])
        if not isinstance(errors, list) or len(errors) > _ERRORS:
            raise ValueError(f"calibration errors must be a list of at most {_ERRORS} numbers")
        checked = [_number({"error": e}, "error", -1.0, 1e6) for e in errors]
        self.scale, self._seen_tokens, self._seen_raw = scale, seen_tokens, seen_raw
        self.samples, self.margin, self._errors = samples, margin, checked
        self._refresh()
        self.revision += 1


def _number(state: dict[str, Any], key: str, low: float, high: float, default: float | None = None) -> float:
    value = state.get(key, default)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"calibration {key} must be a finite number, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"calibration {key} must be between {low:g} and {high:g}, got {value!r}")
    return float(value)


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
