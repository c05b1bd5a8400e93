"""Text from models and stores, made safe to print on a terminal.

A reply or a session name may hold control characters: an escape sequence that
recolours, moves the cursor or retitles the window, a carriage return that overwrites
the line, a newline that forges another line of a listing. On a terminal they are
shown as ``\\x1b``-style escapes instead of being obeyed.
"""

from __future__ import annotations

from typing import TextIO

_CONTROLS = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))]  # C0, DEL, C1: Unicode category Cc
_ESCAPE_ALL = str.maketrans({c: f"\\x{ord(c):02x}" for c in _CONTROLS})
_ESCAPE_KEEP_LINES = str.maketrans({c: f"\\x{ord(c):02x}" for c in _CONTROLS if c not in "\n\t"})


def escaped(text: str, *, keep_lines: bool = False) -> str:
    """``text`` with every control character written as ``\\xNN``; ``keep_lines`` keeps newlines and tabs."""
    return text.translate(_ESCAPE_KEEP_LINES if keep_lines else _ESCAPE_ALL)


class Terminal:
    """A text stream that escapes control characters (newlines and tabs kept) when it is a terminal.

    Escaping character by character is safe for streamed pieces: a sequence split over two
    pieces is escaped in both halves.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.escapes = stream.isatty()

    def write(self, text: str) -> int:
        return self.stream.write(escaped(text, keep_lines=True) if self.escapes else text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.escapes
