"""Exceptions raised by Finite Memory.

Every error the library raises on purpose derives from :class:`FiniteMemoryError`.
Bad arguments raise the built-in ``ValueError`` or ``TypeError`` (some of the classes
below derive from those too, so either ``except`` clause catches them).
"""

from __future__ import annotations


class FiniteMemoryError(Exception):
    """Base class of every error Finite Memory raises on purpose."""


class UnknownPluginError(FiniteMemoryError, ValueError):
    """A policy, backend, store, embedder, summarizer or scorer name that is not installed."""


class BackendNotInstalled(FiniteMemoryError, ImportError):
    """A backend scheme whose distribution is missing; the message names the pip command."""


class BackendError(FiniteMemoryError):
    """A backend failed to produce a reply (HTTP error, broken stream, model failure).

    ``status`` is the HTTP status where there was one; ``retries`` how many times the
    call was retried before giving up.
    """

    def __init__(self, message: str, *, status: int | None = None, retries: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.retries = retries


class ContextLengthError(BackendError):
    """The server refused a prompt longer than the model's context window.

    ``limit`` is the model's context length and ``prompt_tokens`` the server's count of the
    prompt, where its message said them (else ``None``). ``Chat`` shrinks the context by
    what the server said and retries once.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retries: int = 0,
        limit: int | None = None,
        prompt_tokens: int | None = None,
    ) -> None:
        super().__init__(message, status=status, retries=retries)
        self.limit = limit
        self.prompt_tokens = prompt_tokens


class CheckpointError(FiniteMemoryError):
    """A checkpoint or store file that cannot be read back; the message says why."""


class StoreError(FiniteMemoryError):
    """A store that cannot be opened, read or written."""


class PolicyTimeout(FiniteMemoryError):
    """Raised inside a policy that ran past ``max_policy_ms``; the memory falls back to sliding."""
