"""Bounds on what a server may send: body size, line length, time per turn, streamed tokens.

The readers here work on raw bytes as they arrive (sans I/O), so the sync and async paths
share them: :class:`BodyDecoder` undoes ``gzip``/``deflate`` without ever expanding more
than the limit (a gzip bomb stops at the limit, not after), and :class:`LineSplitter` cuts
an event stream into lines, refusing one longer than the limit before holding it whole.
"""

from __future__ import annotations

import math
import re
import zlib
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")

#: Content encodings the readers undo; the requests ask for these only.
ACCEPT_ENCODING = "gzip, deflate"


class LimitExceeded(Exception):
    """What a server sent went past one of the :class:`Limits`; the message says which."""


def _positive(name: str, value: object, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)  # NaN passes every comparison and would wait forever
        or value <= 0
    ):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")


@dataclass(frozen=True, slots=True)
class Limits:
    """What one turn may take from a server before it is cut off with a ``BackendError``.

    Args:
        max_response_bytes: the most bytes a reply (whole, streamed, or an error body) may
            hold once decompressed.
        max_line_bytes: the longest line of an event stream.
        deadline: seconds a whole turn may take, retries and streaming included (the
            ``timeout`` option bounds each read; this bounds their sum, so a server that
            drips a byte a second still stops).
        max_stream_tokens: the most text events a stream may send; ``None`` allows
            ``8 * max_new_tokens + 256`` when the call sets ``max_new_tokens``, else 32,768.
    """

    max_response_bytes: int = 8 * 1024 * 1024
    max_line_bytes: int = 1024 * 1024
    deadline: float = 600.0
    max_stream_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_response_bytes", "max_line_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        _positive("deadline", self.deadline)
        cap = self.max_stream_tokens
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap <= 0):
            raise ValueError(f"max_stream_tokens must be a positive int or None, got {cap!r}")

    def stream_cap(self, max_new_tokens: int | None) -> int:
        """How many text events a stream may send for a call asking ``max_new_tokens``."""
        if self.max_stream_tokens is not None:
            return self.max_stream_tokens
        return 8 * max_new_tokens + 256 if max_new_tokens else 32_768


class BodyDecoder:
    """Undoes a body's content encoding chunk by chunk, never holding more than ``limit`` bytes."""

    __slots__ = ("_decompressor", "_encoding", "_limit", "size")

    def __init__(self, encoding: str | None, limit: int) -> None:
        encoding = (encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise LimitExceeded(f"the server sent a body in an encoding that was not asked for ({encoding[:40]!r})")
        self._encoding = encoding
        self._limit = limit
        self._decompressor: zlib._Decompress | None = None
        self.size = 0

    def _new_decompressor(self, first: bytes) -> zlib._Decompress:
        if self._encoding == "deflate" and first[:1] and (first[0] & 0x0F) != 8:
            return zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send it
        return zlib.decompressobj(zlib.MAX_WBITS | 32)  # zlib or gzip header, detected

    def feed(self, raw: bytes) -> bytes:
        """The decoded bytes of ``raw``; raises :class:`LimitExceeded` past the limit."""
        if self._encoding == "identity":
            return self._count(raw)
        out = []
        data = raw
        while data:
            if self._decompressor is None:
                self._decompressor = self._new_decompressor(data)
            room = self._limit - self.size + 1
            try:
                piece = self._decompressor.decompress(data, room)
            except zlib.error as exc:
                raise LimitExceeded(f"the server sent a body that does not decompress ({exc})") from None
            out.append(self._count(piece))
            data = self._decompressor.unconsumed_tail
            if not data and self._decompressor.eof and self._decompressor.unused_data:
                data = self._decompressor.unused_data  # another gzip member follows
                self._decompressor = None
        return b"".join(out)

    def _count(self, piece: bytes) -> bytes:
        self.size += len(piece)
        if self.size > self._limit:
            raise LimitExceeded(f"the reply is larger than max_response_bytes ({self._limit:,} bytes)")
        return piece

    def finish(self) -> None:
        """Check that a compressed body ended where its encoding says it ends."""
        if self._decompressor is not None and not self._decompressor.eof:
            raise LimitExceeded("the server sent a compressed body that is cut short")


class LineSplitter:
    """Splits an event stream's bytes into text lines (``\\n``, ``\\r\\n`` or ``\\r`` endings).

    A line longer than ``limit`` bytes raises :class:`LimitExceeded` as soon as that many
    bytes arrived without an ending. Bytes that are not UTF-8 become U+FFFD.
    """

    __slots__ = ("_buffer", "_limit", "_skip_newline")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()
        self._skip_newline = False

    def feed(self, data: bytes) -> list[str]:
        if self._skip_newline and data[:1] == b"\n":
            data = data[1:]
        self._skip_newline = False
        if b"\n" not in data and b"\r" not in data:  # the common case of a line in pieces: append
            self._buffer += data
            self._check(len(self._buffer))
            return []
        self._skip_newline = data.endswith(b"\r")
        parts = _LINE_END.split(bytes(self._buffer) + data)
        self._buffer = bytearray(parts.pop())
        for part in parts:
            self._check(len(part))
        self._check(len(self._buffer))
        return [part.decode("utf-8", "replace") for part in parts]

    def _check(self, size: int) -> None:
        if size > self._limit:
            raise LimitExceeded(f"the stream sent a line longer than max_line_bytes ({self._limit:,} bytes)")

    def finish(self) -> list[str]:
        """The last line, when the stream ended without a line ending."""
        if not self._buffer:
            return []
        line = self._buffer.decode("utf-8", "replace")
        self._buffer.clear()
        return [line]
