"""Per-message token counts, keyed by tokenizer and calibration revision."""

from __future__ import annotations

from collections.abc import Sequence

from ._message import Message
from ._tokenizer import Tokenizer


class TokenCounter:
    """Counts messages with one tokenizer; ``key`` changes when cached counts go stale.

    A tokenizer with a ``count_message`` method gives per-message costs directly;
    otherwise a message costs ``count_messages([m]) - count_messages([])``.
    """

    __slots__ = ("_base", "_base_key", "tokenizer")

    def __init__(self, tokenizer: Tokenizer) -> None:
        if not isinstance(tokenizer, Tokenizer):
            raise TypeError("tokenizer must have count(text) and count_messages(messages) methods")
        self.tokenizer = tokenizer
        self._base = 0
        self._base_key: object = None

    @property
    def key(self) -> tuple[int, int]:
        return (id(self.tokenizer), getattr(self.tokenizer, "revision", 0))

    def base(self) -> int:
        """Tokens of an empty prompt (the generation prompt, a default system text)."""
        key = self.key
        if self._base_key != key:
            self._base = self.tokenizer.count_messages([])
            self._base_key = key
        return self._base

    def message(self, message: Message) -> int:
        count_message = getattr(self.tokenizer, "count_message", None)
        if count_message is not None:
            return int(count_message(message))
        return max(0, self.tokenizer.count_messages([message]) - self.base())

    def messages(self, messages: Sequence[Message]) -> int:
        """The exact prompt count, from the tokenizer itself."""
        return self.tokenizer.count_messages(messages)

    @property
    def additive(self) -> bool:
        """Whether a prompt costs :meth:`base` plus its messages' :meth:`message` costs, exactly."""
        return getattr(self.tokenizer, "additive", False) is True

    def text(self, text: str) -> int:
        return self.tokenizer.count(text)
