"""Exact token counts: a model's own tokenizer and chat template, cached per message."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from finite_memory import Message

#: How many per-message counts and rendered prompts the tokenizer remembers.
_CACHE_SIZE = 65536


class ChatTemplateTokenizer:
    """Counts tokens exactly as the model sees them: its chat template, then its tokenizer.

    ``count_messages`` renders the whole prompt with the template, the generation prompt
    included, and tokenizes it: that is the exact number of tokens the backend feeds the
    model. ``count_message`` is one message's share of a prompt (its rendering alone,
    minus the empty prompt's), cached per message, so policies price turns once.
    The last rendered prompt's token ids are kept, so the backend does not tokenize the
    prompt the memory just counted a second time.

    Args:
        tokenizer: a Hugging Face tokenizer (``AutoTokenizer.from_pretrained``).
        chat_template: a Jinja template to use instead of the tokenizer's own.

    Raises:
        ValueError: the tokenizer has no chat template and none was given.
    """

    def __init__(self, tokenizer: Any, chat_template: str | None = None) -> None:
        if chat_template is not None and not isinstance(chat_template, str):
            raise TypeError(f"chat_template must be a Jinja template string, not {type(chat_template).__name__}")
        template = chat_template or getattr(tokenizer, "chat_template", None)
        if not template:
            name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise ValueError(
                f"the tokenizer of {name!r} has no chat template, so prompts cannot be built or counted; "
                "use a chat (instruct) model, or pass chat_template='<jinja template>' to the backend"
            )
        self.hf = tokenizer
        self.chat_template = template
        self._message_costs: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._last: tuple[tuple[Any, ...], list[int]] | None = None
        self._base: int | None = None
        self._per_message: int | None = None

    def __repr__(self) -> str:
        return f"ChatTemplateTokenizer({getattr(self.hf, 'name_or_path', '')!r})"

    # -- the Tokenizer protocol ---------------------------------------------------------

    def count(self, text: str) -> int:
        """Tokens in ``text`` alone, without special tokens."""
        return len(self.encode(text))

    def count_messages(self, messages: Sequence[Message]) -> int:
        """Tokens of ``messages`` rendered with the chat template, ready for the model to answer."""
        if not messages:
            return self.base()
        return len(self.encode_messages(messages))

    def count_message(self, message: Message) -> int:
        """One message's share of a prompt, cached per message.

        For a template that will not render the message alone (one that insists the
        conversation opens with a user message, say), the share is what the message adds
        after a user message; failing that, its text plus a user message's overhead. The
        exact count of the whole prompt still bounds the budget.
        """
        key = _key(message)
        cost = self._message_costs.get(key)
        if cost is None:
            try:
                cost = max(0, len(self._render_ids([message])) - self.base())
            except ValueError:
                probe = Message("user", "hello")
                try:
                    cost = max(0, len(self._render_ids([probe, message])) - len(self._render_ids([probe])))
                except ValueError:
                    cost = self.count(_text(message)) + self._overhead()
            self._remember(self._message_costs, key, cost)
        return cost

    def _overhead(self) -> int:
        """Template tokens around one user message (4 when even that cannot be rendered alone)."""
        if self._per_message is None:
            probe = "hello"
            try:
                self._per_message = max(
                    0, len(self._render_ids([Message("user", probe)])) - self.base() - self.count(probe)
                )
            except ValueError:
                self._per_message = 4
        return self._per_message

    # -- what the backend uses ----------------------------------------------------------

    def base(self) -> int:
        """Tokens of an empty prompt (the generation prompt, a default system text).

        0 for a template that cannot render an empty conversation: each message's share
        then includes the generation prompt, an overestimate that keeps budgets safe.
        """
        if self._base is None:
            try:
                from transformers.utils.chat_template_utils import render_jinja_template

                rendered, _ = render_jinja_template(
                    conversations=[[]],
                    chat_template=self.chat_template,
                    add_generation_prompt=True,
                    **self.hf.special_tokens_map,
                )
                self._base = len(self.encode(rendered[0]))
            except Exception:  # an older transformers, a template that reads messages[0]...
                self._base = 0
        return self._base

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``, without special tokens."""
        return list(self.hf.encode(text, add_special_tokens=False))

    def encode_messages(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the prompt for ``messages`` (the last one rendered is cached)."""
        key = tuple(_key(m) for m in messages)
        if self._last is not None and self._last[0] == key:
            return list(self._last[1])
        ids = self._render_ids(messages)
        self._last = (key, ids)
        return list(ids)

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text for ``messages``, the generation prompt included."""
        from jinja2 import TemplateError

        try:
            text = self.hf.apply_chat_template(
                [to_template_dict(m) for m in messages],
                chat_template=self.chat_template,
                add_generation_prompt=True,
                tokenize=False,
            )
        except TemplateError as exc:
            roles = ", ".join(m.role for m in messages)
            raise ValueError(
                f"the chat template of {self._name()!r} rejects these messages (roles: {roles}): {exc}; "
                "some templates refuse a system message or roles that do not alternate user/assistant"
            ) from exc
        return str(text)

    def _name(self) -> str:
        return str(getattr(self.hf, "name_or_path", "") or type(self.hf).__name__)

    def _render_ids(self, messages: Sequence[Message]) -> list[int]:
        return self.encode(self.render(messages))

    @staticmethod
    def _remember(cache: OrderedDict[tuple[Any, ...], int], key: tuple[Any, ...], value: int) -> None:
        cache[key] = value
        if len(cache) > _CACHE_SIZE:
            cache.popitem(last=False)


def to_template_dict(message: Message) -> dict[str, Any]:
    """A message as chat templates expect it (OpenAI-style keys)."""
    entry: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.name:
        entry["name"] = message.name
    if message.tool_calls:
        entry["tool_calls"] = [dict(call) for call in message.tool_calls]
    if message.tool_call_id:
        entry["tool_call_id"] = message.tool_call_id
    return entry


def _text(message: Message) -> str:
    calls = json.dumps(message.tool_calls) if message.tool_calls else ""
    return " ".join(part for part in (message.name or "", message.content, calls, message.tool_call_id or "") if part)


def _key(message: Message) -> tuple[Any, ...]:
    calls = json.dumps(message.tool_calls, sort_keys=True) if message.tool_calls else None
    return (message.role, message.content, message.name, calls, message.tool_call_id)
