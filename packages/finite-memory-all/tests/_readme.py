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
    """``(line number, command)`` of every line of the bash blocks (of one section), comments kept."""
    lines = []
    for block in blocks():
        if block.language != "bash" or (section is not None and block.section != section):
            continue
        for offset, line in enumerate(block.code.splitlines()):
            if line.strip():
                lines.append((block.line + offset, line))
    return lines
