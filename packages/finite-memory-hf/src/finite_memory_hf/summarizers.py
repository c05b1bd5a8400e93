"""``ModelSummarizer``: a running summary written by a local model, for ``rolling_summary`` (``summarizer="model"``)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from finite_memory import BackendError, Message

#: Numbers (with their decimal, time and date separators) and capitalised names.
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
_NAME = re.compile(r"\b[A-Z][a-zA-Z]+(?:['’][a-z]+)?\b")
#: Capitalised words that are not names (sentence openers, pronouns, days are kept as names).
_NOT_NAMES = frozenset(
    [
        "I",
        "A",
        "An",
        "The",
        "This",
        "That",
        "These",
        "Those",
        "It",
        "He",
        "She",
        "We",
        "They",
        "You",
        "My",
        "Your",
        "His",
        "Her",
        "Our",
        "Their",
        "What",
        "When",
        "Where",
        "Who",
        "Why",
        "How",
        "Yes",
        "No",
        "Ok",
        "Okay",
        "Sure",
        "Thanks",
        "Thank",
        "Hi",
        "Hello",
        "And",
        "But",
        "Or",
        "So",
        "If",
        "Then",
        "Also",
        "Please",
        "Well",
        "Oh",
        "Great",
        "Good",
        "Nice",
        "Summary",
        "User",
        "Assistant",
        "System",
        "Tool",
        "In",
        "On",
        "At",
        "To",
        "For",
        "Of",
        "With",
        "From",
        "By",
        "As",
        "Is",
        "Are",
        "Was",
        "Were",
        "Do",
        "Does",
        "Did",
        "Can",
        "Could",
        "Will",
        "Would",
    ]
)

#: The model ``ModelSummarizer()`` loads when built by name, with no arguments.
MODEL_VARIABLE = "FINITE_MEMORY_SUMMARY_MODEL"

PROMPT = (
    "Update the running summary of a conversation. Write at most {words} words. Keep every name, "
    "number, date and decision; drop greetings and small talk. Reply with the summary only."
)


def facts(text: str) -> set[str]:
    """The names and numbers in ``text`` that a faithful summary keeps."""
    names = {n for n in _NAME.findall(text) if n not in _NOT_NAMES}
    return names | set(_NUMBER.findall(text))


class ModelSummarizer:
    """Summarises evicted turns with a local chat model, and checks the result.

    A model summary is accepted only when it fits ``max_tokens`` and keeps at least
    ``min_fact_recall`` of the names and numbers of its source (the previous summary and
    the evicted texts) that an extractive summary of the same size keeps. Otherwise (a
    small model that drops "Ana" or "7:30", or rambles) the summarizer falls back to that
    extractive summary (core's ``extractive`` summarizer: the most salient sentences).
    ``fallbacks`` counts those calls.

    Args:
        model: an ``HFBackend``, or a ``"hf:<folder>"`` spec / folder to load one. When it
            is the chat's own backend, summaries run ``detached``, so the chat's KV cache
            is kept. Omitted (as when a policy builds ``summarizer="model"`` by name, or
            reloads it from a checkpoint), the model named by the environment variable
            ``FINITE_MEMORY_SUMMARY_MODEL`` is loaded.
        min_fact_recall: the share of names and numbers a model summary must keep (0-1).
        **backend_options: options for a backend loaded from a spec (``device``, ``dtype``).
    """

    name = "model"

    def __init__(self, model: Any = None, *, min_fact_recall: float = 1.0, **backend_options: Any) -> None:
        if model is None:
            model = os.environ.get(MODEL_VARIABLE) or None
        if model is None:
            raise ValueError(
                "the model summarizer needs a chat model: ModelSummarizer('hf:/path/to/model') or an HFBackend, "
                f"or set {MODEL_VARIABLE} to a model folder for summarizer='model' by name; "
                "core's extractive summarizer needs none"
            )
        if not isinstance(min_fact_recall, (int, float)) or not 0 <= min_fact_recall <= 1:
            raise ValueError(f"min_fact_recall must be between 0 and 1, got {min_fact_recall!r}")
        if isinstance(model, str):
            from .backend import HFBackend

            model = HFBackend(model.removeprefix("hf:"), **backend_options)
        elif backend_options:
            raise TypeError("backend options go with a model spec, not with a built backend")
        self.backend = model
        self.min_fact_recall = float(min_fact_recall)
        from finite_memory._registry import load_plugin

        self.extractive = load_plugin("summarizers", "extractive")()
        self.fallbacks = 0
        self.calls = 0

    def __repr__(self) -> str:
        return f"ModelSummarizer({self.backend.name!r}, fallbacks={self.fallbacks}/{self.calls})"

    def summarize(self, previous: str, evicted: Sequence[str], max_tokens: int, count: Callable[[str], int]) -> str:
        """A summary of ``previous`` and ``evicted`` of at most ``max_tokens`` tokens (by ``count``)."""
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
        self.calls += 1
        source = "\n".join([previous, *evicted]).strip()
        if not source:
            return ""
        fallback = str(self.extractive.summarize(previous, evicted, max_tokens, count))
        candidate = self._generate(previous, evicted, max_tokens)
        if self.accepts(candidate, source, fallback, max_tokens, count):
            return candidate
        self.fallbacks += 1
        return fallback

    def accepts(self, summary: str, source: str, reference: str, max_tokens: int, count: Callable[[str], int]) -> bool:
        """Whether ``summary`` fits and keeps the names and numbers that ``reference`` (same size) keeps."""
        if not summary.strip() or count(summary) > max_tokens:
            return False
        wanted = facts(reference) & facts(source)
        if not wanted:
            return True
        kept = {f for f in wanted if f in summary}
        return len(kept) >= self.min_fact_recall * len(wanted)

    def _generate(self, previous: str, evicted: Sequence[str], max_tokens: int) -> str:
        words = max(8, int(max_tokens * 0.7))
        body = (f"Summary so far:\n{previous}\n\n" if previous else "") + "New messages:\n" + "\n".join(evicted)
        messages = [Message("system", PROMPT.format(words=words)), Message("user", body)]
        try:
            completion = self.backend.complete(messages, max_new_tokens=max_tokens, temperature=0, detached=True)
        except (ValueError, BackendError):  # a source longer than the model's context, a failed pass: extractive
            return ""
        return str(completion.text).strip()
