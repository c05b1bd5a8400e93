"""The reference project's public API (``finite_memory_llm``), on this library.

Code written for the reference keeps working through an import alias::

    import finite_memory.compat
    finite_memory.compat.install_alias()  # ``finite_memory_llm`` and ``finite_memory_llm.core`` now name this module

    from finite_memory_llm import CompleteFiniteMemoryLLM, HuggingFaceBackend
    llm = CompleteFiniteMemoryLLM(HuggingFaceBackend("gpt2"), memory_policy="sliding")
    llm.chat("Hello!")  # {"response": ..., "tokens_used": ..., "context_length": ..., "stats": MemoryStats(...), ...}

Covered: :class:`CompleteFiniteMemoryLLM` (``chat``, ``reset``, ``stats``,
``conversation_history``, ``token_buffer``, ``get_context_window``, checkpoints in the
reference's JSON layout, both ways), backends written for the reference
(:class:`LLMBackend`: ``encode``/``decode``/``generate`` on token ids),
:class:`APIChatBackend`, :class:`HuggingFaceBackend`, :class:`MemoryStats`,
:class:`ContextBuilder`, :class:`TelemetryHook` and :class:`PrometheusHook`.
Where the reference behaved unsafely this module does not: an unknown policy or
keyword raises instead of being ignored, a failing backend raises
:class:`~finite_memory.BackendError` instead of returning ``"Error: ..."`` as the reply.
Not covered: the reference's private methods (``_evict_sliding``...), its async,
multilingual and extra-provider modules. New code should use
:class:`~finite_memory.Chat` and :class:`~finite_memory.Memory` directly.
"""

from __future__ import annotations

import sys
from types import ModuleType

from ._backends import APIChatBackend, LLMBackend
from ._checkpoints import ReferenceCheckpointError
from ._context_builder import ContextBuilder
from ._huggingface import HuggingFaceBackend
from ._llm import CompleteFiniteMemoryLLM
from ._stats import MemoryStats
from ._telemetry import PrometheusHook, TelemetryHook

__all__ = [
    "APIChatBackend",
    "CompleteFiniteMemoryLLM",
    "ContextBuilder",
    "HuggingFaceBackend",
    "LLMBackend",
    "MemoryStats",
    "PrometheusHook",
    "ReferenceCheckpointError",
    "TelemetryHook",
    "install_alias",
]


def install_alias(name: str = "finite_memory_llm") -> ModuleType:
    """Make ``import finite_memory_llm`` (and ``finite_memory_llm.core``) import this module; returns it.

    Call it once, before the code written for the reference imports its package.
    """
    module = sys.modules[__name__]
    sys.modules[name] = module
    sys.modules[f"{name}.core"] = module
    return module
