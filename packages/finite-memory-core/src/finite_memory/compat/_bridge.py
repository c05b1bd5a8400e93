"""A backend written for the reference project, served to a ``Chat`` as a transcript of token ids."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from importlib import import_module
from typing import Any

from .._backend import Completion, SyncBackend
from .._errors import BackendError, BackendNotInstalled, FiniteMemoryError
from .._message import Message
from ._backends import APIChatBackend, token_rows
from ._transcript import GENERATION_PROMPT, transcript, transcript_line

#: ``max_new_tokens`` when a turn gives none (the reference's ``chat()`` default).
DEFAULT_MAX_NEW_TOKENS = 50

#: Per-message token ids remembered by a :class:`TranscriptTokenizer`.
_CACHE_SIZE = 65536

_METHODS = ("encode", "decode", "generate")


def is_reference_backend(backend: object) -> bool:
    """Whether ``backend`` speaks the reference's interface (``encode``, ``decode``, ``generate``)."""
    return all(callable(getattr(backend, method, None)) for method in _METHODS)


class TranscriptTokenizer:
    """Counts a prompt exactly as the bridge feeds it: each message's line encoded alone, then the generation prompt."""

    def __init__(self, encode: Callable[[str], Any]) -> None:
        self._encode = encode
        self._lines: OrderedDict[tuple[Any, ...], list[int]] = OrderedDict()
        self._prompt: list[int] | None = None

    def encode(self, text: str) -> list[int]:
        ids = self._encode(text)
        try:
            return [int(t) for t in ids]
        except (TypeError, ValueError):
            raise TypeError(f"the backend's encode() returned {type(ids).__name__}, not a list of ids") from None

    def message_ids(self, message: Message) -> list[int]:
        calls = json.dumps(message.tool_calls, sort_keys=True) if message.tool_calls else None
        key = (message.role, message.content, calls)
        ids = self._lines.get(key)
        if ids is None:
            ids = self._lines[key] = self.encode(transcript_line(message))
            if len(self._lines) > _CACHE_SIZE:
                self._lines.popitem(last=False)
        return ids

    def prompt_ids(self) -> list[int]:
        if self._prompt is None:
            self._prompt = self.encode(GENERATION_PROMPT)
        return self._prompt

    def encode_messages(self, messages: Sequence[Message]) -> list[int]:
        """The prompt's ids: every message's line, then the generation prompt."""
        return [t for m in messages for t in self.message_ids(m)] + self.prompt_ids()

    def count(self, text: str) -> int:
        return len(self.encode(text))

    def count_message(self, message: Message) -> int:
        return len(self.message_ids(message))

    def count_messages(self, messages: Sequence[Message]) -> int:
        return sum(self.count_message(m) for m in messages) + len(self.prompt_ids())


class ReferenceBackendBridge(SyncBackend):
    """Serves a reference-style backend to a :class:`~finite_memory.Chat`.

    The context goes out as a transcript (``role: content`` lines, then
    ``assistant:``): as token ids in a ``[1, n]`` torch tensor on ``device`` to
    ``generate``, or as text to an :class:`APIChatBackend`. Whatever ``generate``
    returns after the prompt's ids is the reply. A backend that raises, or returns
    something else than ``{"sequences": ids}``, fails the turn with
    :class:`~finite_memory.BackendError`.
    """

    def __init__(self, backend: Any, device: str = "cpu") -> None:
        if not is_reference_backend(backend):
            raise TypeError(f"{type(backend).__name__} lacks encode(), decode() or generate()")
        self.original = backend
        self.device = device
        self.name = _model_name(backend)
        self.transcript = TranscriptTokenizer(backend.encode)
        self.tokenizer = self.transcript
        self.last_ids: list[int] = []

    def __repr__(self) -> str:
        return f"ReferenceBackendBridge({self.name!r})"

    def complete(self, messages: Sequence[Message], **options: Any) -> Completion:
        max_new = options.pop("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
        prompt = self.transcript.encode_messages(messages)
        try:
            if isinstance(self.original, APIChatBackend):
                text = self.original.send(transcript(list(messages)), max_new)
                generated = self.transcript.encode(text)
            else:
                generated = self._generate(prompt, max_new, options)
                text = str(self.original.decode(generated))
        except FiniteMemoryError:
            raise
        except Exception as exc:
            raise BackendError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        self.last_ids = prompt + generated
        return Completion(
            text=text,
            finish_reason="length" if len(generated) >= max_new else "stop",
            usage={"prompt_tokens": len(prompt), "completion_tokens": len(generated)},
            stats={"generated_tokens": len(generated)},
        )

    def _generate(self, prompt: list[int], max_new: int, options: dict[str, Any]) -> list[int]:
        try:
            torch = import_module("torch")
        except ImportError:
            raise BackendNotInstalled(
                "backends written for finite_memory_llm take torch tensors; install torch"
            ) from None
        input_ids = torch.tensor([prompt], dtype=torch.long, device=self.device)
        output = self.original.generate(input_ids, max_new_tokens=max_new, **options)
        if not isinstance(output, Mapping) or "sequences" not in output:
            raise BackendError(f"{self.name}: generate() must return {{'sequences': ids}}, got {type(output).__name__}")
        return token_rows(output["sequences"])[0][len(prompt) :]

    def stream(self, messages: Sequence[Message], **options: Any) -> Iterator[str | Completion]:
        completion = self.complete(messages, **options)
        if completion.text:
            yield completion.text
        yield completion


def _model_name(backend: Any) -> str:
    get_name = getattr(backend, "get_model_name", None)
    name = get_name() if callable(get_name) else None
    return name if isinstance(name, str) and name else type(backend).__name__
