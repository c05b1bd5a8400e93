"""LlamaIndex: ``FiniteMemoryBuffer``, a llama-index-core memory whose ``get`` is the policy's context.

``pip install "finite-memory-core[llamaindex]"``::

    from llama_index.core.agent.workflow import FunctionAgent
    from finite_memory import Memory
    from finite_memory.integrations.llamaindex import FiniteMemoryBuffer

    memory = FiniteMemoryBuffer(Memory("hybrid", max_tokens=8000, store="sqlite:///chats.db", session="user-42"))
    agent = FunctionAgent(llm=llm, tools=tools)
    await agent.run("What did I say about Lisbon?", memory=memory)
"""

from __future__ import annotations

from typing import Any

from .._memory import Memory
from ._framework import missing
from ._memories import emptied

try:
    from llama_index.core.base.llms.types import ChatMessage
    from llama_index.core.bridge.pydantic import ConfigDict, Field
    from llama_index.core.memory import BaseMemory

    from ._llamaindex_messages import from_llamaindex, to_llamaindex
except ImportError as exc:  # pragma: no cover - exercised by the core-only test session
    raise missing("llama-index-core", "llamaindex", exc) from exc

__all__ = ["FiniteMemoryBuffer"]


class FiniteMemoryBuffer(BaseMemory):  # type: ignore[misc]
    """A llama-index ``BaseMemory`` on a :class:`~finite_memory.Memory`.

    ``put``/``put_messages`` archive (tool calls and their results included), ``get(input=...)``
    returns the policy's context for ``input`` (for the last user message when omitted)
    within the memory's budget, ``get_all`` the whole archive. Leave the memory's
    ``reserve_output`` room for the agent's system prompt, its tools and the reply,
    which llama-index adds outside the memory. ``reset()`` deletes the session from the
    memory's store and goes on with an empty memory of the same settings.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    memory: Any = Field(description="The finite_memory.Memory behind the buffer.", exclude=True)

    def __init__(self, memory: Memory, **data: Any) -> None:
        if not isinstance(memory, Memory):
            raise TypeError(f"memory must be a finite_memory.Memory, not {type(memory).__name__}")
        super().__init__(memory=memory, **data)

    @classmethod
    def class_name(cls) -> str:
        return "FiniteMemoryBuffer"

    @classmethod
    def from_defaults(cls, memory: Memory | None = None, **kwargs: Any) -> FiniteMemoryBuffer:
        """A buffer on ``memory``, or on ``Memory(**kwargs)`` (``policy``, ``max_tokens``, ``store``...)."""
        return cls(memory if memory is not None else Memory(**kwargs))

    def get(self, input: str | None = None, **kwargs: Any) -> list[ChatMessage]:
        query = input if input is not None else _last_user_text(self.memory)
        return [to_llamaindex(m) for m in self.memory.context(query=query).messages]

    def get_all(self) -> list[ChatMessage]:
        return [to_llamaindex(m) for m in self.memory.messages]

    def put(self, message: ChatMessage) -> None:
        self.memory.extend([from_llamaindex(message)])

    def put_messages(self, messages: list[ChatMessage]) -> None:
        self.memory.extend([from_llamaindex(m) for m in messages])

    def set(self, messages: list[ChatMessage]) -> None:
        self.reset()
        self.put_messages(messages)

    def reset(self) -> None:
        self.memory = emptied(self.memory)


def _last_user_text(memory: Memory) -> str | None:
    turns = memory.turns
    if not turns:
        return None
    first = turns[-1].messages[0]
    return first.content if first.role == "user" else None
