"""Finite Memory inside agent frameworks; each module imports its framework when it is imported.

- :mod:`finite_memory.integrations.langchain`: ``FiniteMemoryMiddleware`` for LangChain v1's
  ``create_agent`` and ``FiniteMemoryChatMessageHistory`` (``pip install "finite-memory-core[langchain]"``).
- :mod:`finite_memory.integrations.llamaindex`: ``FiniteMemoryBuffer``, a llama-index-core memory
  (``pip install "finite-memory-core[llamaindex]"``).

``import finite_memory`` never imports these.
"""
