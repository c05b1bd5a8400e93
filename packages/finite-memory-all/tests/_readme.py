"""The root README's fenced code blocks, with the section each sits in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, its first line in the README and its ``##`` section."""

    language: str
    code: str
    line: int
    section: str


def blocks() -> list[Block]:
    text = README.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()]
        headings = re.findall(r"^## (.+)$", before, flags=re.M)
        found.append(Block(match.group(1), match.group(2), before.count("\n") + 2, headings[-1] if headings else ""))
    return found


def shell_lines(section: str | None = None) -> list[tuple[int, str]]:
    """``(line number, command)`` of every command of the bash blocks (of one section), comments kept.

    A command continued with a trailing ``\\`` is one command, numbered by its first line.
    """
    lines = []
    for block in blocks():
        if block.language != "bash" or (section is not None and block.section != section):
            continue
        pending: tuple[int, str] | None = None  # a command continued on the next line (``\``)
        for offset, line in enumerate(block.code.splitlines()):
            if pending is not None:
                number, line = pending[0], pending[1] + " " + line.strip()
                pending = None
            else:
                number = block.line + offset
            if line.rstrip().endswith("\\"):
                pending = (number, line.rstrip()[:-1].rstrip())
            elif line.strip():
                lines.append((number, line))
    return lines
