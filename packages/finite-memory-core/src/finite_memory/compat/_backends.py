"""The reference project's backend interface (token ids in, token ids out) and its ``APIChatBackend``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any


class LLMBackend(ABC):
    """A backend written for the reference project: ``encode``/``decode`` text and ``generate`` ids.

    ``generate(input_ids, max_new_tokens)`` takes a ``[1, n]`` tensor of prompt ids and
    returns ``{"sequences": tensor}`` holding the prompt followed by the new ids, as
    Hugging Face's ``generate`` does. :class:`~finite_memory.compat.CompleteFiniteMemoryLLM`
    accepts such a backend (an instance of this class, or any object with these four
    methods) and serves it the memory's context as a plain ``role: content`` transcript.
    """

    @abstractmethod
    def generate(self, input_ids: Any, max_new_tokens: int, **kwargs: Any) -> dict[str, Any]:
        """``{"sequences": ids}``: the prompt ids followed by the generated ones."""

    @abstractmethod
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``."""

    @abstractmethod
    def decode(self, tokens: list[int]) -> str:
        """Text of token ids."""

    @abstractmethod
    def get_model_name(self) -> str:
        """The model's name."""


class APIChatBackend(LLMBackend):
    """A hosted model behind a function: ``send(prompt, max_new_tokens) -> reply text``.

    Args:
        tokenizer: counts tokens: any object with ``encode(text, add_special_tokens=False)``
            and ``decode(ids, skip_special_tokens=True)`` (a Hugging Face tokenizer).
        send_callable: sends the prompt text to the model and returns the reply text.
        name: the backend's name.

    In a chat the prompt is the context's transcript, sent as text (no torch needed).
    A ``send_callable`` that raises fails the turn with :class:`~finite_memory.BackendError`
    and leaves the memory as it was (the reference returned the error as the reply).
    """

    def __init__(self, tokenizer: Any, send_callable: Callable[[str, int], str], name: str = "api-chat") -> None:
        for method in ("encode", "decode"):
            if not callable(getattr(tokenizer, method, None)):
                raise TypeError(f"tokenizer needs an {method}() method (a Hugging Face tokenizer, say)")
        if not callable(send_callable):
            raise TypeError("send_callable must be a function send(prompt, max_new_tokens) -> str")
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty string, got {name!r}")
        self._tokenizer = tokenizer
        self._send = send_callable
        self._name = name

    def __repr__(self) -> str:
        return f"APIChatBackend(name={self._name!r})"

    def encode(self, text: str) -> list[int]:
        return [int(t) for t in self._tokenizer.encode(text, add_special_tokens=False)]

    def decode(self, tokens: list[int]) -> str:
        return str(self._tokenizer.decode(list(tokens), skip_special_tokens=True))

    def get_model_name(self) -> str:
        return self._name

    def send(self, prompt: str, max_new_tokens: int) -> str:
        """The model's reply to ``prompt``; a reply that is not text raises ``TypeError``."""
        reply = self._send(prompt, max_new_tokens)
        if not isinstance(reply, str):
            raise TypeError(f"send_callable returned {type(reply).__name__}, not the reply text")
        return reply

    def generate(self, input_ids: Any, max_new_tokens: int, **kwargs: Any) -> dict[str, Any]:
        """Decode the prompt ids, send the text, and return the prompt ids followed by the reply's."""
        prompt = token_rows(input_ids)[0]
        reply = self.encode(self.send(self.decode(prompt), max_new_tokens))
        return {"sequences": like(input_ids, [prompt + reply])}


def token_rows(ids: Any) -> list[list[int]]:
    """``[[int, ...]]`` from a ``[1, n]`` tensor, a list of lists, or a flat list of ids."""
    rows = ids.tolist() if hasattr(ids, "tolist") else ids
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"token ids must be a tensor or a list, not {type(ids).__name__}")
    if not rows or not isinstance(rows[0], (list, tuple)):
        rows = [rows]
    try:
        return [[int(t) for t in row] for row in rows]
    except (TypeError, ValueError):
        raise TypeError("token ids must be integers") from None


def like(template: Any, rows: list[list[int]]) -> Any:
    """``rows`` as the same kind of object as ``template`` (a tensor on its device, or lists)."""
    if hasattr(template, "new_tensor"):
        return template.new_tensor(rows)
    return rows
