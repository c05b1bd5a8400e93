"""Typed reads of what a server sent: every shape is either read as documented or refused.

The provider parsers (``openai.py``, ``anthropic.py``) read JSON only through these
helpers, which raise :class:`Malformed` (with where and what) for anything else. The HTTP
layer turns ``Malformed`` into a ``BackendError`` carrying the status and a redacted
snippet, so a hostile or broken server can produce nothing but a valid ``Completion`` or
a ``BackendError``. Numbers a server reports are sanity-checked before anyone trusts them.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from finite_memory import Completion, Message

#: The largest token count a server may report and be believed (no model has a 100M context).
MAX_REPORTED_TOKENS = 100_000_000

_SURROGATE = re.compile("[\ud800-\udfff]")


class Malformed(ValueError):
    """A reply that is not what the API documents; the message says where."""


class Incomplete(Malformed):
    """A stream that ended before its reply was complete (no finish reason)."""


def loads(raw: bytes | str, what: str = "the reply") -> Any:
    """JSON text as Python data, refusing NaN, infinities, absurd nesting and undecodable bytes."""
    try:
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except Malformed:
        raise
    except (ValueError, RecursionError, UnicodeDecodeError) as exc:
        raise Malformed(f"{what} is not valid JSON ({type(exc).__name__}: {str(exc)[:120]})") from None


def _no_constant(name: str) -> Any:
    raise Malformed(f"the reply holds {name}, which is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Malformed(f"the reply holds the number {text[:40]}, which is out of range")
    return value


def kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{where} must be a JSON object, got {kind(value)}")
    return value


def arr(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{where} must be a JSON array, got {kind(value)}")
    return value


def clean(text: str) -> str:
    """``text`` with lone surrogates (which no file or database can store) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def string(value: Any, where: str, *, optional: bool = False, nonempty: bool = False) -> str:
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise Malformed(f"{where} must be a string, got {kind(value)}")
    if nonempty and not value:
        raise Malformed(f"{where} must not be empty")
    return clean(value)


def index(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1024:
        raise Malformed(f"{where} must be a small non-negative integer, got {str(value)[:40]}")
    return value


def tokens(value: Any) -> int | None:
    """A token count a server reported, or ``None`` when it is missing or not believable."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPORTED_TOKENS:
        return None
    return value


def json_arguments(value: Any, where: str) -> str:
    """Tool-call arguments as JSON text of an object (servers that send the object get it encoded)."""
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    text = string(value, where, optional=True) or "{}"
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        raise Malformed(f"{where} is not JSON text: {text[:80]!r}") from None
    if not isinstance(parsed, dict):
        raise Malformed(f"{where} must be a JSON object, got {kind(parsed)}")
    return text


def tool_call(call_id: Any, name: Any, arguments: Any, where: str) -> dict[str, Any]:
    """One tool call in the OpenAI form a :class:`~finite_memory.Message` keeps."""
    return {
        "id": string(call_id, f"{where}.id", nonempty=True),
        "type": "function",
        "function": {
            "name": string(name, f"{where}.name", nonempty=True),
            "arguments": json_arguments(arguments, f"{where}.arguments"),
        },
    }


def completion(
    text: str,
    calls: list[dict[str, Any]],
    finish: Any,
    *,
    prompt: Any,
    output: Any,
    cached: Any = 0,
    reasoning: Any = None,
) -> Completion:
    """A :class:`Completion` with usage and stats from the counts a server reported.

    A count that is missing, negative, not an integer or absurdly large makes the whole
    usage unreported (``stats["usage_ignored"]`` says why) rather than trusted.
    """
    finish_reason = string(finish, "finish_reason", optional=True) or None
    usage: dict[str, int] = {}
    stats: dict[str, Any] = {}
    if prompt is not None or output is not None:
        counts = {"prompt": tokens(prompt), "output": tokens(output or 0), "cached": tokens(cached or 0)}
        bad = [name for name, value in counts.items() if value is None]
        if not bad and counts["cached"] > counts["prompt"]:  # type: ignore[operator]
            bad = ["cached > prompt"]
        if bad:
            stats["usage_ignored"] = f"implausible {', '.join(bad)} count"
        else:
            p, o, c = counts["prompt"], counts["output"], counts["cached"]
            assert p is not None and o is not None and c is not None
            usage = {"prompt_tokens": p, "completion_tokens": o, "total_tokens": p + o}
            stats = {
                "prefill_tokens": p - c,
                "reused_tokens": c,
                "cached_prompt_tokens": c,
                "uncached_prompt_tokens": p - c,
                "generated_tokens": o,
            }
            thinking = tokens(reasoning)
            if thinking is not None and reasoning is not None and thinking <= o:
                usage["reasoning_tokens"] = thinking
                stats["reasoning_tokens"] = thinking
    text = clean(text)
    try:  # the archive's gate: a reply that could not be archived (duplicate call ids...) is malformed
        Message("assistant", text, tool_calls=calls or None)
    except (TypeError, ValueError) as exc:
        raise Malformed(f"the reply cannot be archived: {exc}"[:200]) from None
    return Completion(text=text, tool_calls=tuple(calls) or None, finish_reason=finish_reason, usage=usage, stats=stats)
