"""The chat-format overhead rule shared by tokenizers that count contents exactly but not the template."""

from __future__ import annotations

import json
from collections.abc import Sequence

from finite_memory import Message


class ChatOverhead:
    """Counts a prompt as its contents (``count``, from the subclass) plus fixed overheads.

    Each message adds ``per_message`` tokens (its role and delimiters), a name one more, and
    a prompt ``per_prompt`` (the reply's priming), as OpenAI documents for its chat models.
    """

    per_message = 4
    per_prompt = 3

    def count(self, text: str) -> int:
        raise NotImplementedError

    def count_message(self, message: Message) -> int:
        """Tokens one message adds to a prompt."""
        tokens = self.per_message + self.count(message.content)
        if message.name:
            tokens += 1 + self.count(message.name)
        if message.tool_calls:
            tokens += self.count(json.dumps(message.tool_calls, ensure_ascii=False))
        if message.tool_call_id:
            tokens += self.count(message.tool_call_id)
        return tokens

    def count_messages(self, messages: Sequence[Message]) -> int:
        return self.per_prompt + sum(self.count_message(m) for m in messages)
