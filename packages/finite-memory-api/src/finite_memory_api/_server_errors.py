"""Reading a server's error body: its message, and whether it says the prompt was too long."""

from __future__ import annotations

import re
from typing import Any

from ._parse import Malformed, loads, tokens

_TOO_LONG = re.compile(
    r"(?i)context[ _-]?(length|window|size)|prompt is too long|too many tokens|maximum context|exceed_context_size"
)
_LIMIT = (
    re.compile(r"(?i)maximum context length is (\d+)"),
    re.compile(r"(?i)tokens?\s*>\s*(\d+)\s*maximum"),
    re.compile(r"(?i)context (?:window|size|length) (?:is|of) (\d+)"),
)
_PROMPT = (
    re.compile(r"(?i)\((\d+) in the messages"),
    re.compile(r"(?i)(\d+) input tokens"),
    re.compile(r"(?i)messages resulted in (\d+) tokens"),
    re.compile(r"(?i)prompt is too long: (\d+) tokens"),
    re.compile(r"(?i)you requested (\d+) tokens"),
)


def server_message(raw: bytes) -> tuple[str, Any]:
    """The error message a server put in its body (OpenAI and Anthropic forms), and the JSON (or None)."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        data = loads(text)
    except Malformed:
        return text, None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, dict):
            for key in ("message", "detail", "error"):
                if isinstance(error.get(key), str):
                    return str(error[key]), data
        elif isinstance(error, str):
            return error, data
    return text, data


def context_overflow(status: int | None, message: str, data: Any) -> tuple[int | None, int | None] | None:
    """``(limit, prompt_tokens)`` when the error says the prompt was longer than the context, else ``None``.

    Reads OpenAI's ``context_length_exceeded``, vLLM's and OpenAI's "maximum context length
    is N tokens ... (M in the messages ...)", Anthropic's "prompt is too long: M tokens > N
    maximum" and llama.cpp's ``exceed_context_size_error`` (``n_ctx``, ``n_prompt_tokens``).
    """
    if status is not None and status not in (400, 413, 422):
        return None
    error = data.get("error") if isinstance(data, dict) else None
    fields = error if isinstance(error, dict) else {}
    code = " ".join(str(fields.get(k, "")) for k in ("code", "type"))
    if not (_TOO_LONG.search(message) or "context_length_exceeded" in code or "exceed_context_size" in code):
        return None
    limit = tokens(fields.get("n_ctx")) if "n_ctx" in fields else _first(_LIMIT, message)
    prompt = tokens(fields.get("n_prompt_tokens")) if "n_prompt_tokens" in fields else _first(_PROMPT, message)
    return limit, prompt


def _first(patterns: tuple[re.Pattern[str], ...], text: str) -> int | None:
    for pattern in patterns:
        match = pattern.search(text)
        if match:
            return tokens(int(match.group(1)[:12]))
    return None
