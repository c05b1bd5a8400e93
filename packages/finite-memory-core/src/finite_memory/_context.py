"""What a memory hands to a backend each turn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ._message import Message
from ._provider_messages import to_anthropic, to_openai


@dataclass(frozen=True, slots=True)
class TurnStats:
    """How one context was built.

    ``candidates`` is the number of older turns the policy chose from and ``dropped``
    how many of them it left out; ``fallback`` is true when the policy ran past
    ``max_policy_ms`` and the sliding window was used instead; ``truncated`` counts
    messages cut to fit.
    """

    policy: str
    policy_ms: float
    fallback: bool = False
    candidates: int = 0
    dropped: int = 0
    summary_tokens: int = 0
    truncated: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Context:
    """The messages to send, system first, and how they were chosen.

    ``tokens`` is counted with the memory's tokenizer and is always at most
    ``max_tokens - reserve_output``; ``included`` holds the ids of the archived
    messages present (whole or truncated). ``stable_prefix`` is how many leading
    messages are expected to be unchanged in the next turn's context: the place for a
    prompt-cache breakpoint (Anthropic's ``cache_control``), and the part a prefix
    cache serves again.
    """

    messages: list[Message]
    tokens: int
    included: list[int]
    stats: TurnStats
    budget: int = field(default=0)
    stable_prefix: int = field(default=0)
    _draft: Any = field(default=None, repr=False, compare=False)

    def as_dicts(self) -> list[dict[str, Any]]:
        """The messages in the archive's form (``Message.to_dict``): ``id``, ``turn`` and ``meta`` included.

        For a provider's SDK use :meth:`to_openai` or :meth:`to_anthropic`.
        """
        return [m.to_dict() for m in self.messages]

    def to_openai(self) -> list[dict[str, Any]]:
        """The messages for ``client.chat.completions.create(model=..., messages=ctx.to_openai())``."""
        return to_openai(self.messages)

    def to_anthropic(self) -> dict[str, Any]:
        """``system`` and ``messages``: ``client.messages.create(model=..., max_tokens=..., **ctx.to_anthropic())``."""
        return to_anthropic(self.messages)


def common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    """The length of the longest common prefix of two sequences (of messages, or what a backend sees of them)."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x is not y and x != y:
            break
        n += 1
    return n
