"""Replay a conversation as a live chat and measure what a chat needs beside recall.

Each user line builds the context its reply would be generated from, before the line
is archived (as ``Chat.send`` does: the line is the query and the pending turn), and
the turn is then committed with it. Two figures come out of it:

- continuity: the share of user lines whose ``CONTINUITY_LINES`` preceding lines are
  all in the context (the model can follow "yes, do that");
- prefix reuse: per context, the share of its tokens in the longest common message
  prefix with the previous context, the part a prefix cache (a local KV cache, vLLM,
  llama.cpp, OpenAI's prompt caching, Anthropic's ``cache_control``) serves again.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._context import common_prefix
from .._message import Message

if TYPE_CHECKING:
    from .._memory import Memory
    from .locomo import DialogueTurn

#: How many lines before a user line must be in its context to count as continuous.
CONTINUITY_LINES = 6


@dataclass
class ChatFigures:
    """Per-turn figures of one chat replay (or several, merged with :meth:`merge`)."""

    continuous: list[bool] = field(default_factory=list)
    reuse: list[float] = field(default_factory=list)

    @property
    def continuity(self) -> float:
        """Share of user lines whose preceding lines were all in their context."""
        return sum(self.continuous) / len(self.continuous) if self.continuous else 0.0

    @property
    def reuse_median(self) -> float:
        return statistics.median(self.reuse) if self.reuse else 0.0

    @property
    def reuse_mean(self) -> float:
        return statistics.fmean(self.reuse) if self.reuse else 0.0

    def merge(self, other: ChatFigures) -> None:
        self.continuous += other.continuous
        self.reuse += other.reuse


def replay_chat(memory: Memory, lines: Iterable[DialogueTurn]) -> ChatFigures:
    """Replay ``lines`` into ``memory`` as a chat and return its continuity and prefix reuse.

    Every user line builds a context with the line as query and pending turn; the line is
    then archived with that context's draft committed (as a successful ``Chat`` turn).
    Other lines are archived as they come.
    """
    figures = ChatFigures()
    previous: list[tuple[Any, ...]] | None = None
    for line in lines:
        meta = {"dia_id": line.dia_id, **({"date_time": line.date_time} if line.date_time else {})}
        message = Message(line.role, line.content, meta=meta)
        if line.role != "user":
            memory.extend([message])
            continue
        context = memory._build(line.content, [message])
        archived = memory._messages
        wanted = {m.id for m in archived[-CONTINUITY_LINES:] if m.role != "system"}
        figures.continuous.append(wanted <= set(context.included))
        sent = [_key(m) for m in context.messages]
        if previous is not None and context.tokens:
            common = common_prefix(previous, sent)
            figures.reuse.append(memory.tokenizer.count_messages(context.messages[:common]) / context.tokens)
        previous = sent
        memory.extend([message], context=context)
    return figures


def _key(message: Message) -> tuple[Any, ...]:
    """What a backend receives of a message (ids and turn numbers are not sent)."""
    return (message.role, message.content, message.name, message.tool_calls, message.tool_call_id)
