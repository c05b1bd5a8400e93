"""One redaction filter for every error message, log record and ``repr`` this package emits.

Secrets are registered as they enter the package (API keys, credentials in ``base_url``,
values of credential headers) and live as long as the backend that holds them. Whatever
text leaves the package (an exception message, a log record, a server's quoted body) goes
through :func:`redact`, which replaces every live secret with ``***`` and also masks what
looks like a credential even when it was never registered: ``Bearer ...`` tokens, key
headers and ``user:password@`` in URLs.
"""

from __future__ import annotations

import base64
import logging
import re
import threading
import weakref
from typing import Any

#: Values shorter than this are placeholders (``"x"``, ``"ollama"``, ``"EMPTY"``), not secrets:
#: replacing them everywhere would garble messages without protecting anything.
MIN_SECRET = 8

#: Header names whose values are credentials.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie"})

_PATTERNS = (
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=\-]{4,}"), r"\1\2***"),
    (
        re.compile(
            r"""(?i)((?:x-)?api[-_]?key|authorization|proxy-authorization)(['"]?\s*[:=,]\s*b?['"]?)[^\s'",)}]+"""
        ),
        r"\1\2***",
    ),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@:]*:[^/\s@]*@"), r"\1***@"),
)

#: Loggers whose records this package causes: its own, and httpx's and httpcore's.
LOGGERS = (
    "finite_memory_api",
    "httpx",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
)


class Secret:
    """A credential that never shows itself in a ``repr``, a log line or an error.

    Creating one registers its value with the redaction filter for as long as the
    object lives.
    """

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        self._value = value
        _register(self)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def reveal(self) -> str:
        return self._value

    def __reduce__(self) -> Any:
        raise TypeError("a credential cannot be pickled")


_LIVE: weakref.WeakSet[Secret] = weakref.WeakSet()
_LOCK = threading.Lock()
_INSTALLED = False


def _register(secret: Secret) -> None:
    with _LOCK:
        _LIVE.add(secret)
    install()


def install() -> None:
    """Put the redaction filter on this package's, httpx's and httpcore's loggers (once)."""
    global _INSTALLED
    with _LOCK:
        if not _INSTALLED:
            for name in LOGGERS:
                logging.getLogger(name).addFilter(RedactingFilter())
            _INSTALLED = True


def _variants(value: str) -> list[str]:
    return [value] if len(value) >= MIN_SECRET else []


def redact(text: str) -> str:
    """``text`` with every live secret and every credential-looking value replaced by ``***``."""
    with _LOCK:
        secrets = sorted({v for s in _LIVE for v in _variants(s.reveal())}, key=len, reverse=True)
    for value in secrets:
        if value in text:
            text = text.replace(value, "***")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def snippet(text: str, limit: int = 300) -> str:
    """A redacted excerpt of what a server sent: redacted first, then cut, so no cut shows a prefix."""
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "..."


def clean_key(value: str | None, label: str = "api_key") -> Secret | None:
    """An API key as a :class:`Secret`, or ``None``.

    Whitespace and NUL around it (a key read from a file or a Docker secret ends with a
    newline) are stripped; a key with any other character an HTTP header cannot carry is
    refused with a ``ValueError`` that never shows the key.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{label} must be a str or None, not {type(value).__name__}")
    stripped = value.strip(" \t\r\n\0\x0b\x0c")
    for position, char in enumerate(stripped):
        if not "\x21" <= char <= "\x7e":
            raise ValueError(
                f"{label} has a character an HTTP header cannot carry at position {position} "
                f"(U+{ord(char):04X}); check where the key was read from"
            )
    return Secret(stripped) if stripped else None


def clean_headers(headers: Any) -> tuple[dict[str, str], list[Secret]]:
    """Extra headers checked for what HTTP allows; credential values come back as secrets too."""
    if headers is None:
        return {}, []
    if not hasattr(headers, "items"):
        raise TypeError(f"headers must be a mapping of names to values, not {type(headers).__name__}")
    checked: dict[str, str] = {}
    secrets: list[Secret] = []
    for name, value in headers.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError("header names and values must be str")
        if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            raise ValueError(f"header name {name[:40]!r} is not a valid HTTP token")
        secret = any(word in name.lower() for word in ("key", "token", "secret", "auth", "cookie"))
        cleaned = value.strip(" \t\r\n\0")
        for position, char in enumerate(cleaned):
            if char in "\r\n\0" or not (" " <= char <= "\x7e" or char == "\t"):
                shown = "" if secret else f": {cleaned[:40]!r}"
                raise ValueError(f"header {name!r} has a character HTTP cannot carry at position {position}{shown}")
        if secret or name.lower() in CREDENTIAL_HEADERS:
            secrets.append(Secret(cleaned))
            _, _, token = cleaned.partition(" ")
            if token:
                secrets.append(Secret(token))
        checked[name] = cleaned
    return checked, secrets


def split_credentials(url: str) -> tuple[str, tuple[str, str] | None, list[Secret]]:
    """``url`` without ``user:password@``, the credentials, and the secrets they make."""
    match = re.match(r"(?i)^([a-z][a-z0-9+.\-]*://)([^/@]*)@(.*)$", url)
    if match is None:
        return url, None, []
    from urllib.parse import unquote

    user, _, password = match.group(2).partition(":")
    user, password = unquote(user), unquote(password)
    pair = f"{user}:{password}"
    secrets = [Secret(password), Secret(pair), Secret(base64.b64encode(pair.encode()).decode())]
    return match.group(1) + match.group(3), (user, password), secrets


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message (and its formatted exception) through :func:`redact`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not format: leave it to logging's own handling
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
