"""Tenants: the ``--api-keys-file`` that maps client keys to tenants, and session names namespaced by tenant."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from pathlib import Path

from ._errors import ProxyError

logger = logging.getLogger("finite_memory_api.serve")

#: A tenant name: it never holds "/", so "<tenant>/<session id>" cannot be forged by any session id.
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

#: The shortest client key the file may hold (shorter ones are guessable).
MIN_KEY_LENGTH = 16

#: The longest session id a client may send.
MAX_SESSION_ID = 256

#: Seconds between checks of the keys file for changes (keys rotate without a restart).
RELOAD_INTERVAL = 1.0


def parse_keys(text: str, source: str) -> dict[str, str]:
    """``{sha256(key): tenant}`` from the file's ``key tenant`` lines.

    Blank lines and lines starting with ``#`` are skipped. Errors name the line, never
    the key.
    """
    keys: dict[str, str] = {}
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{source}, line {number}: expected 'KEY TENANT', found {len(fields)} fields")
        key, tenant = fields
        if len(key) < MIN_KEY_LENGTH:
            raise ValueError(f"{source}, line {number}: the key is shorter than {MIN_KEY_LENGTH} characters")
        if not TENANT_NAME.fullmatch(tenant):
            raise ValueError(
                f"{source}, line {number}: tenant {tenant!r} must be 1-64 letters, digits, '_', '.' or '-', "
                "starting with a letter or digit"
            )
        digest = _digest(key)
        if digest in keys:
            raise ValueError(f"{source}, line {number}: the same key as line {lines[digest]}")
        keys[digest] = tenant
        lines[digest] = number
    if not keys:
        raise ValueError(f"{source} holds no 'KEY TENANT' line: every request would be refused")
    return keys


class Tenants:
    """Client keys and their tenants, read from a file and re-read when it changes.

    A changed file that cannot be read (a half-written edit) keeps the keys in force and
    logs why; the keys themselves never reach a log line or an error.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            stat = self.path.stat()
            self._keys = parse_keys(self.path.read_text(encoding="utf-8"), str(self.path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the API keys file {str(self.path)!r}: {exc}") from None
        self._stamp = (stat.st_mtime_ns, stat.st_size)
        self._checked = time.monotonic()

    def __len__(self) -> int:
        return len(self._keys)

    def authenticate(self, authorization: str | None) -> str:
        """The tenant of an ``Authorization: Bearer <key>`` header, or a 401 :class:`ProxyError`."""
        self._reload_if_changed()
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ProxyError(
                401,
                "missing API key: send 'Authorization: Bearer <key>'",
                code="invalid_api_key",
                headers={"www-authenticate": "Bearer"},
            )
        tenant = self._keys.get(_digest(key.strip()))
        if tenant is None:
            raise ProxyError(401, "invalid API key", code="invalid_api_key", headers={"www-authenticate": "Bearer"})
        return tenant

    def _reload_if_changed(self) -> None:
        now = time.monotonic()
        if now - self._checked < RELOAD_INTERVAL:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return
            self._keys = parse_keys(self.path.read_text(encoding="utf-8"), str(self.path))
            self._stamp = stamp
            logger.info("reloaded %d API keys from %s", len(self._keys), self.path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            logger.warning("kept the previous API keys: %s", exc)


def session_name(tenant: str | None, session_id: str) -> str:
    """The store's name for a client's session: ``"<tenant>/<id>"`` with tenants, else the id.

    A tenant name holds no ``/``, so whatever id a client sends, the name starts with
    its own tenant and nothing else: no id reaches another tenant's sessions.
    """
    if not session_id or len(session_id) > MAX_SESSION_ID or not session_id.isprintable():
        raise ProxyError(
            400,
            f"X-Finite-Memory-Session must be 1-{MAX_SESSION_ID} printable characters",
            code="invalid_session",
            param="X-Finite-Memory-Session",
        )
    return session_id if tenant is None else f"{tenant}/{session_id}"


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
