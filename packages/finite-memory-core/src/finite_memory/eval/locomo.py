"""Reading conversations in LoCoMo's JSON format."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

_SESSION = re.compile(r"^session_(\d+)$")


@dataclass(frozen=True, slots=True)
class DialogueTurn:
    """One line of a LoCoMo conversation, as the memory receives it."""

    role: Literal["user", "assistant"]  # "user" for speaker A, "assistant" for speaker B
    content: str  # "<speaker>: <text>"
    dia_id: str
    session: int
    date_time: str | None


def dialogue(sample: dict[str, Any]) -> Iterator[DialogueTurn]:
    """The lines of one conversation in order, sessions sorted by number."""
    try:
        conversation = sample["conversation"]
        speaker_a = conversation["speaker_a"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a LoCoMo conversation (missing {exc})") from None
    sessions = sorted(int(m.group(1)) for key in conversation if (m := _SESSION.match(key)))
    for number in sessions:
        date_time = conversation.get(f"session_{number}_date_time")
        for line in conversation[f"session_{number}"]:
            text = line["text"]
            if line.get("blip_caption"):
                text = f"{text} [shares a photo: {line['blip_caption']}]"
            role: Literal["user", "assistant"] = "user" if line["speaker"] == speaker_a else "assistant"
            yield DialogueTurn(role, f"{line['speaker']}: {text}", line["dia_id"], number, date_time)
