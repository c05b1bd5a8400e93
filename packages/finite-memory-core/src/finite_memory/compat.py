"""The reference project's API, ``CompleteFiniteMemoryLLM``, as a thin adapter over ``Chat``.

Code written against ``llm.chat(message) -> {"response": ..., "stats": ...}`` keeps
working; new code should use :class:`~finite_memory.Chat` directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ._backend import Backend
from ._chat import Chat
from ._memory import Memory


class CompleteFiniteMemoryLLM:
    """``CompleteFiniteMemoryLLM(backend, max_tokens=512, memory_policy="sliding")``.

    ``backend`` is a :class:`~finite_memory.Backend` or a ``"scheme:model"`` spec.
    The reference project's tuning knobs (``window_size``, ``semantic_clusters``,
    ``summary_interval``, ``embedding_model``, ``device``, ``telemetry_hook``) are
    accepted and ignored: policies take their own options through ``policy_options``.
    """

    def __init__(
        self,
        backend: Backend | str,
        max_tokens: int = 512,
        memory_policy: str = "sliding",
        max_policy_ms: float | None = None,
        policy_options: dict[str, Any] | None = None,
        **ignored: Any,
    ) -> None:
        self.max_tokens = max_tokens
        self.memory_policy = memory_policy
        self._policy_options = dict(policy_options or {})
        self.max_policy_ms = max_policy_ms
        self._chat = Chat(backend, self._new_memory())

    def _new_memory(self) -> Memory:
        return Memory(self.memory_policy, self.max_tokens, max_policy_ms=self.max_policy_ms, **self._policy_options)

    @property
    def backend(self) -> Backend:
        return self._chat.backend

    @property
    def memory(self) -> Memory:
        return self._chat.memory

    @property
    def conversation_history(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.memory.messages]

    def chat(self, message: str, max_new_tokens: int = 50) -> dict[str, Any]:
        """One turn; returns ``response``, ``tokens_used``, ``context_length``, ``stats``, ``memory_policy``."""
        if not message or not message.strip():
            return {
                "response": "",
                "tokens_used": 0,
                "context_length": 0,
                "stats": {},
                "memory_policy": self.memory_policy,
            }
        reply = self._chat.send(message, max_new_tokens=max_new_tokens)
        return {
            "response": reply.text,
            "tokens_used": reply.usage.get("completion_tokens", reply.stats.get("generated_tokens", 0)),
            "context_length": reply.stats["context_tokens"],
            "stats": reply.stats,
            "memory_policy": self.memory_policy,
        }

    def reset(self) -> None:
        """Forget the conversation."""
        self._chat.memory = self._new_memory()
        if self.backend.tokenizer is not None:
            self._chat.memory.use_tokenizer(self.backend.tokenizer)

    def get_context_window(self) -> str:
        """The current context as text, one ``role: content`` line per message."""
        return "\n".join(f"{m.role}: {m.content}" for m in self.memory.context().messages)

    def save_checkpoint(self, path: str | Path) -> Path:
        """Save the memory as a versioned checkpoint (see :meth:`Memory.save`)."""
        self.memory.save(path)
        return Path(path)

    def load_checkpoint(self, path: str | Path) -> dict[str, Any]:
        """Load a checkpoint saved by :meth:`save_checkpoint`; returns the memory's config."""
        memory = Memory.load(path)
        if self.backend.tokenizer is not None:
            memory.use_tokenizer(self.backend.tokenizer)
        self._chat.memory = memory
        return {"max_tokens": memory.max_tokens, "memory_policy": memory.policy.name}
