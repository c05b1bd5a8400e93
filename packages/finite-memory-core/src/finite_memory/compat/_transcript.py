"""The plain transcript a base language model reads: one ``role: content`` line per message."""

from __future__ import annotations

from .._message import Message

#: What the model is asked to continue.
GENERATION_PROMPT = "assistant:"

#: The same layout as a Jinja chat template, for a tokenizer that has none (a base model such as gpt2).
TRANSCRIPT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}" + GENERATION_PROMPT + "{% endif %}"
)


def transcript_line(message: Message) -> str:
    """One message as a transcript line."""
    return f"{message.role}: {message.content}\n"


def transcript(messages: list[Message]) -> str:
    """A whole prompt: the lines, then the generation prompt."""
    return "".join(transcript_line(m) for m in messages) + GENERATION_PROMPT
