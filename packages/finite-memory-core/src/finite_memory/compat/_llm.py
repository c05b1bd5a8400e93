"""``CompleteFiniteMemoryLLM``: the reference project's main class, as a thin adapter over ``Chat``."""

from __future__ import annotations

import os
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._backend import Backend, SyncBackend
from .._chat import Chat, Reply
from .._context import Context
from .._counting import TokenCounter
from .._memory import Memory, check_policy_budget
from .._registry import load_backend
from ._bridge import ReferenceBackendBridge, is_reference_backend
from ._checkpoints import TUNING, ReferenceCheckpointError, read, write
from ._context_builder import ContextBuilder
from ._huggingface import HuggingFaceBackend
from ._stats import MemoryStats, TurnLedger

#: The reference's defaults for its tuning knobs, reported when they are not given.
REFERENCE_DEFAULTS = {"window_size": 128, "semantic_clusters": 4, "summary_interval": 256}

#: ``embedding_model`` names of the reference that map to a registered embedder.
_EMBEDDERS = {"sentence-transformers/all-MiniLM-L6-v2": "minilm", "all-MiniLM-L6-v2": "minilm"}


class CompleteFiniteMemoryLLM:
    """The reference's ``CompleteFiniteMemoryLLM``: ``chat(message)`` returns a dict with ``response`` and ``stats``.

    Args:
        backend: a reference-style backend (:class:`LLMBackend`, :class:`APIChatBackend`,
            :class:`HuggingFaceBackend`, or any object with ``encode``, ``decode`` and
            ``generate``), a :class:`~finite_memory.Backend`, or a ``"scheme:model"`` spec.
        max_tokens: the context budget in tokens; the reply comes on top, as in the
            reference (``reserve_output=0``). At least 32.
        memory_policy: ``sliding``, ``importance``, ``semantic``, ``rolling_summary``,
            ``hybrid`` or any installed policy; an unknown name raises ``ValueError``
            (the reference silently used ``sliding``).
        window_size: sizes ``context_builder``'s recent tail; given explicitly it also
            leaves that many tokens to the recent window of ``semantic``/``hybrid``/``importance``
            (``retrieval_tokens = max_tokens - window_size``).
        semantic_clusters: given explicitly, sets ``semantic``/``hybrid``'s ``candidates``
            (how many retrieved turns compete for the context).
        summary_interval: given explicitly, sets ``rolling_summary``/``hybrid``'s
            ``low_water`` to ``1 - summary_interval / max_tokens`` (at least 0.1): the window
            drops, and the summary folds what it dropped, about once per that many tokens of
            new conversation.
        embedding_model: ``semantic``/``hybrid``'s embedder: ``all-MiniLM-L6-v2`` means
            ``minilm`` (finite-memory-hf), any other registered embedder name works.
        device: where a reference-style backend's input tensors are put.
        max_policy_ms: the policy's latency budget; past it the turn uses the sliding
            window (counted in ``stats.fallback_count``).
        telemetry_hook: a :class:`TelemetryHook` called each turn.
        system: a system prompt (not in the reference).
        policy_options: this project's policy options, applied last (not in the reference).

    Any other keyword raises ``TypeError``. A backend that fails raises
    :class:`~finite_memory.BackendError` and leaves the memory as it was (the reference
    returned ``"Error: ..."`` as the reply). The knobs left out keep each policy's own
    defaults, and ``llm.window_size`` (and the others) report the reference's defaults.
    """

    def __init__(
        self,
        backend: Any,
        max_tokens: int = 512,
        memory_policy: str = "sliding",
        window_size: int | None = None,
        semantic_clusters: int | None = None,
        summary_interval: int | None = None,
        embedding_model: str | None = None,
        device: str = "cpu",
        max_policy_ms: float | None = None,
        telemetry_hook: Any = None,
        *,
        system: str | None = None,
        policy_options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(memory_policy, str):
            raise TypeError(f"memory_policy must be a policy name, not {type(memory_policy).__name__}")
        given = dict(window_size=window_size, semantic_clusters=semantic_clusters, summary_interval=summary_interval)
        for name, value in given.items():
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.backend = load_backend(backend) if isinstance(backend, str) else backend
        self.device = device
        self.telemetry_hook = telemetry_hook
        self.system = system
        self.embedding_model = embedding_model
        self._extra_options = dict(policy_options or {})
        self._given = {name: value for name, value in given.items() if value is not None}
        self.max_tokens = max_tokens
        self.memory_policy = memory_policy
        self._ledger = TurnLedger(MemoryStats())
        self.token_buffer: deque[int] = deque()
        self.context_builder = ContextBuilder(max_tokens=max(0, max_tokens), window_size=self.window_size)
        memory = self._new_memory(memory_policy, max_tokens, self._given, max_policy_ms)
        self._chat = Chat(self._chat_backend(), memory)

    def __repr__(self) -> str:
        return f"CompleteFiniteMemoryLLM(policy={self.memory_policy!r}, max_tokens={self.max_tokens})"

    # -- settings -------------------------------------------------------------------

    @property
    def window_size(self) -> int:
        return int(self._given.get("window_size", REFERENCE_DEFAULTS["window_size"]))

    @property
    def semantic_clusters(self) -> int:
        return int(self._given.get("semantic_clusters", REFERENCE_DEFAULTS["semantic_clusters"]))

    @property
    def summary_interval(self) -> int:
        return int(self._given.get("summary_interval", REFERENCE_DEFAULTS["summary_interval"]))

    @property
    def stats(self) -> MemoryStats:
        """The running totals (replace them with a new :class:`MemoryStats` to start counting again)."""
        return self._ledger.stats

    @stats.setter
    def stats(self, stats: MemoryStats) -> None:
        if not isinstance(stats, MemoryStats):
            raise TypeError(f"stats must be a MemoryStats, not {type(stats).__name__}")
        self._ledger.stats = stats

    @property
    def max_policy_ms(self) -> float | None:
        return self.memory.max_policy_ms

    @max_policy_ms.setter
    def max_policy_ms(self, value: float | None) -> None:
        check_policy_budget(value)
        self.memory.max_policy_ms = value

    @property
    def memory(self) -> Memory:
        """The :class:`~finite_memory.Memory` behind the adapter."""
        return self._chat.memory

    @property
    def chat_backend(self) -> Backend:
        """The :class:`~finite_memory.Backend` the turns go through."""
        return self._chat.backend

    @property
    def conversation_history(self) -> list[dict[str, Any]]:
        """Every archived message as ``{"role", "content", "tokens"}`` (and tool fields where set)."""
        counter = TokenCounter(self.memory.tokenizer)
        history = []
        for message in self.memory.messages:
            if message.role == "system":
                continue
            entry = {key: value for key, value in message.to_dict().items() if key not in ("id", "turn", "meta")}
            entry["tokens"] = counter.message(message)
            history.append(entry)
        return history

    def policy_options(self) -> dict[str, Any]:
        """The policy options the reference's knobs map to, then ``policy_options``."""
        return self._options(self.memory_policy, self.max_tokens, self._given)

    def _options(self, policy: str, max_tokens: int, given: dict[str, int]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        budget = max(1, max_tokens)
        if "window_size" in given and policy in ("semantic", "hybrid", "importance"):
            options["retrieval_tokens"] = max(0, budget - given["window_size"])
        if "semantic_clusters" in given and policy in ("semantic", "hybrid"):
            options["candidates"] = given["semantic_clusters"]
        if "summary_interval" in given and policy in ("rolling_summary", "hybrid"):
            options["low_water"] = round(max(0.1, 1 - given["summary_interval"] / budget), 2)
        if self.embedding_model is not None and policy in ("semantic", "hybrid"):
            options["embedder"] = _EMBEDDERS.get(self.embedding_model, self.embedding_model)
        options.update(self._extra_options)
        return options

    def _new_memory(self, policy: str, max_tokens: int, given: dict[str, int], max_policy_ms: float | None) -> Memory:
        return Memory(
            policy,
            max_tokens,
            reserve_output=0,
            system=self.system,
            max_policy_ms=max_policy_ms,
            **self._options(policy, max_tokens, given),
        )

    def _chat_backend(self) -> Backend:
        backend = self.backend
        if isinstance(backend, HuggingFaceBackend):
            return backend.chat_backend  # type: ignore[no-any-return]
        if is_reference_backend(backend) and not isinstance(backend, SyncBackend):
            return ReferenceBackendBridge(backend, self.device)
        if isinstance(backend, Backend):
            return backend
        raise TypeError(
            f"backend must have encode(), decode() and generate() (the reference's interface), be a "
            f"finite_memory Backend, or a 'scheme:model' string; got {type(backend).__name__}"
        )

    # -- turns ----------------------------------------------------------------------

    def chat(self, message: str, max_new_tokens: int = 50) -> dict[str, Any]:
        """One turn, as a dict: ``response``, ``tokens_used``, ``context_length``, ``stats``, ``memory_policy``.

        ``stats`` is the running :class:`MemoryStats` (the same object each turn).

        An empty or blank message returns an empty response and changes nothing.
        """
        start = time.perf_counter()
        self._hook("on_chat_start", message)
        if not isinstance(message, str):
            raise TypeError(f"message must be a str, not {type(message).__name__}")
        if not message.strip():
            return self._result("", 0, len(self.token_buffer))
        memory = self.memory
        summary_before = _summary_text(memory)
        seen_before = self.stats.tokens_seen
        reply = self._chat.send(message, max_new_tokens=max_new_tokens)
        context = self._chat.last_context
        assert context is not None  # set by the turn that just returned
        added = memory.turns[-1].messages[-2:]
        counter = TokenCounter(memory.tokenizer)
        reused = int(reply.stats.get("reused_tokens", 0))
        self._ledger.record(
            context,
            added,
            counter,
            importance=memory.policy.name == "importance",
            summary_changed=_summary_text(memory) not in ("", summary_before),
            reused_tokens=reused,
        )
        self.token_buffer = deque(self._window_ids(context, reply))
        if isinstance(self.backend, HuggingFaceBackend):
            self.backend.record_reuse(reused, len(self.token_buffer))
        before = seen_before + counter.message(added[0])
        self._hook("on_policy_execute", memory.policy.name, context.stats.policy_ms, before, context.tokens)
        if "reused_tokens" in reply.stats:
            if reused:
                self._hook("on_cache_hit", reused, int(reply.stats.get("prefill_tokens", 0)))
            else:
                self._hook("on_cache_miss", context.tokens)
        used = int(reply.usage.get("completion_tokens", reply.stats.get("generated_tokens", 0)))
        result = self._result(reply.text, used, context.tokens)
        self._hook("on_chat_complete", asdict(self.stats), (time.perf_counter() - start) * 1000)
        return result

    def _result(self, response: str, tokens_used: int, context_length: int) -> dict[str, Any]:
        return {
            "response": response,
            "tokens_used": tokens_used,
            "context_length": context_length,
            "stats": self.stats,
            "memory_policy": self.memory_policy,
        }

    def _window_ids(self, context: Context, reply: Reply) -> list[int]:
        """Token ids of the last prompt and reply, where the backend's tokenizer gives ids (else none)."""
        backend = self.chat_backend
        if isinstance(backend, ReferenceBackendBridge):
            return list(backend.last_ids)
        tokenizer = backend.tokenizer
        encode_messages = getattr(tokenizer, "encode_messages", None)
        encode = getattr(tokenizer, "encode", None)
        if encode_messages is None or encode is None:
            return []
        return [*encode_messages(context.messages), *encode(reply.text)]

    def _hook(self, name: str, *args: Any) -> None:
        method = getattr(self.telemetry_hook, name, None)
        if method is not None:
            method(*args)

    def reset(self) -> None:
        """Forget the conversation and zero the stats (same settings)."""
        memory = self._new_memory(self.memory_policy, self.max_tokens, self._given, self.max_policy_ms)
        self._start(memory, MemoryStats(), [])

    def _start(self, memory: Memory, stats: MemoryStats, token_buffer: list[int]) -> None:
        """Go on from ``memory`` with these totals (after a reset or a loaded checkpoint)."""
        self._chat = Chat(self._chat.backend, memory)
        self._ledger = TurnLedger(stats)
        self.token_buffer = deque(token_buffer)
        self.context_builder = ContextBuilder(max_tokens=max(0, self.max_tokens), window_size=self.window_size)

    def get_context_window(self) -> str:
        """The context the next turn starts from, one ``role: content`` line per message ("" when empty)."""
        return "\n".join(f"{m.role}: {m.content}" for m in self.memory.context().messages)

    # -- checkpoints ----------------------------------------------------------------

    def save_checkpoint(self, path: str | os.PathLike[str]) -> Path:
        """Write a checkpoint in the reference's layout, with the whole memory inside; returns its path.

        Written atomically; the reference can read it too (see :mod:`finite_memory.compat`).
        """
        config = {"max_tokens": self.max_tokens, "memory_policy": self.memory_policy}
        config.update({name: getattr(self, name) for name in TUNING})
        return write(
            path,
            config=config,
            memory=self.memory,
            stats=self.stats,
            history=self.conversation_history,
            token_buffer=list(self.token_buffer),
            model=self.chat_backend.name,
        )

    def load_checkpoint(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Load a checkpoint written here, by the reference, or by :meth:`Memory.save`; returns its ``config``.

        The policy, budget and knobs become the checkpoint's. A bad file raises
        :class:`~finite_memory.CheckpointError` (also a ``KeyError``, as in the reference)
        and changes nothing.
        """
        loaded = read(path, self._chat.backend.tokenizer)
        config = loaded.config
        given = {**self._given, **{name: config[name] for name in TUNING if name in config}}
        memory = loaded.memory
        if memory is None:
            try:
                memory = self._new_memory(config["memory_policy"], config["max_tokens"], given, self.max_policy_ms)
                memory.extend(loaded.history)
            except (TypeError, ValueError) as exc:
                raise ReferenceCheckpointError(f"{path}: cannot rebuild the memory: {exc}"[:500]) from None
        self._given = given
        self.max_tokens, self.memory_policy = memory.max_tokens, memory.policy.name
        self._start(memory, loaded.stats, loaded.token_buffer)
        return config


def _summary_text(memory: Memory) -> str:
    summary = getattr(memory.policy, "summary", None)
    return str(getattr(summary, "text", "") or "")
