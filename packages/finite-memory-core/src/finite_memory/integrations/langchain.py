"""LangChain: a finite memory for ``create_agent`` agents and for classic chains.

``pip install "finite-memory-core[langchain]"`` (langchain >= 1, langchain-core >= 1)::

    from langchain.agents import create_agent
    from finite_memory.integrations.langchain import FiniteMemoryMiddleware

    agent = create_agent(model, tools, middleware=[FiniteMemoryMiddleware(policy="hybrid", max_tokens=8000)])

The agent's state keeps every message; on each model call the model sees the
policy's context for the newest human message instead, within the budget, with tool
calls and their results kept together. With ``store="sqlite:///agent.db"`` each
thread id gets a persistent :class:`~finite_memory.Memory`, so the archive and the
policy's state (a running summary, say) outlive the process, even for an agent
invoked without a LangGraph checkpointer.

:class:`FiniteMemoryChatMessageHistory` is a ``BaseChatMessageHistory`` for classic
chains. langchain-core 1.x marks ``RunnableWithMessageHistory``, its usual consumer,
deprecated in favour of LangGraph persistence: new code should prefer the middleware.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._memory import Memory
from .._message import Message
from .._tokenizer import Tokenizer
from ._framework import missing
from ._memories import emptied

try:
    from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage

    from ._langchain_messages import LC_ID, from_langchain, text_of, to_langchain
except ImportError as exc:  # pragma: no cover - exercised by the core-only test session
    raise missing("langchain >= 1 and langchain-core >= 1", "langchain", exc) from exc

__all__ = ["FiniteMemoryChatMessageHistory", "FiniteMemoryMiddleware"]


@dataclass
class _Thread:
    """One conversation: its memory, the LangChain ids archived, and the original messages by id."""

    memory: Memory
    archived: set[str]
    originals: dict[str, BaseMessage] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FiniteMemoryMiddleware(AgentMiddleware):  # type: ignore[misc]
    """Give a ``create_agent`` model the policy's context instead of the whole conversation.

    Args:
        policy: a registered policy name (``"hybrid"``, ``"sliding"``, ``"semantic"``...).
        max_tokens: the model's context budget, prompt and reply together.
        reserve_output: tokens kept free for the reply (the memory's default when omitted).
        store: a store URL (``"sqlite:///agent.db"``) for one persistent memory per
            thread id; in-process memories when omitted.
        session_prefix: put before the thread id to name the store session.
        tokenizer: counts tokens (an estimate that calibrates itself when omitted).
        max_policy_ms: the policy's latency budget (see :class:`~finite_memory.Memory`).
        max_threads: in-process memories kept at once; the least recently used goes
            first (a persistent one is reopened from its store).
        **options: the policy's options (``sink_turns=1``...).

    ``wrap_model_call`` archives the state's new messages and swaps the request's
    messages for the context built for the newest human message; ``after_model``
    archives the reply. The request's system prompt and the tools' JSON schemas count
    against the budget; a running summary joins the system message. The thread id is
    the one in the run's config (``configurable.thread_id``), ``"default"`` without one.
    """

    def __init__(
        self,
        policy: str = "hybrid",
        max_tokens: int = 4096,
        reserve_output: int | None = None,
        *,
        store: str | None = None,
        session_prefix: str = "",
        tokenizer: Tokenizer | None = None,
        max_policy_ms: float | None = None,
        max_threads: int = 1024,
        **options: Any,
    ) -> None:
        super().__init__()
        if not isinstance(max_threads, int) or isinstance(max_threads, bool) or max_threads < 1:
            raise ValueError(f"max_threads must be an int >= 1, got {max_threads!r}")
        self._settings: dict[str, Any] = {
            "policy": policy,
            "max_tokens": max_tokens,
            "reserve_output": reserve_output,
            "tokenizer": tokenizer,
            "max_policy_ms": max_policy_ms,
            **options,
        }
        self._store = store
        self._prefix = session_prefix
        self._max_threads = max_threads
        self._threads: OrderedDict[str, _Thread] = OrderedDict()
        self._lock = threading.Lock()
        Memory(**self._settings).close()  # bad settings fail here, not at the first model call

    def memory(self, thread_id: str = "default") -> Memory:
        """The memory of one thread (opened, or reopened from the store, when needed)."""
        return self._thread(thread_id).memory

    # -- LangChain hooks ------------------------------------------------------------

    def wrap_model_call(self, request: ModelRequest, handler: Callable[[ModelRequest], ModelResponse]) -> Any:
        return handler(self._trimmed(request))

    async def awrap_model_call(
        self, request: ModelRequest, handler: Callable[[ModelRequest], Awaitable[ModelResponse]]
    ) -> Any:
        return await handler(await asyncio.to_thread(self._trimmed, request))

    def after_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        thread = self._thread(_thread_id(runtime))
        with thread.lock:
            self._archive(thread, state["messages"])
        return None

    async def aafter_model(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return await asyncio.to_thread(self.after_model, state, runtime)

    # -- the work -------------------------------------------------------------------

    def _trimmed(self, request: ModelRequest) -> ModelRequest:
        thread = self._thread(_thread_id(request.runtime))
        state_messages = (request.state or {}).get("messages") or request.messages
        with thread.lock:
            self._archive(thread, state_messages)
            memory = thread.memory
            system = text_of(request.system_message) if request.system_message is not None else ""
            memory.system = "\n\n".join(part for part in (system, _tools_text(request.tools)) if part) or None
            context = memory.context(query=_newest_human_text(state_messages))
        messages = context.messages
        if memory.system is not None and messages and messages[0].role == "system" and messages[0].id is None:
            messages = messages[1:]  # the request's own system message and tools go out unchanged
        extra = [m.content for m in messages if m.role == "system"]
        converted = [self._restored(thread, m) for m in messages if m.role != "system"]
        return request.override(messages=converted, system_message=_with_extra(request.system_message, extra))

    def _archive(self, thread: _Thread, messages: Sequence[BaseMessage]) -> None:
        """Archive the messages after the last one already archived (O(new), not O(state))."""
        new: list[BaseMessage] = []
        for message in reversed(messages):
            if message.id is not None and message.id in thread.archived:
                break
            new.append(message)
        if not new:
            return
        new.reverse()
        try:
            thread.memory.extend([from_langchain(m) for m in new])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"FiniteMemoryMiddleware cannot archive the agent's new messages: {exc}") from exc
        for message in new:
            if message.id is not None:
                thread.archived.add(message.id)
                thread.originals[message.id] = message

    def _restored(self, thread: _Thread, message: Message) -> BaseMessage:
        """The original LangChain message when the context holds it whole, else a rebuilt one."""
        original = thread.originals.get(message.meta.get(LC_ID, ""))
        if original is not None and text_of(original) == message.content:
            return original
        return to_langchain(message)

    def _thread(self, thread_id: str) -> _Thread:
        with self._lock:
            thread = self._threads.get(thread_id)
            if thread is not None:
                self._threads.move_to_end(thread_id)
                return thread
            memory = Memory(**self._settings, store=self._store, session=f"{self._prefix}{thread_id}")
            archived = {m.meta[LC_ID] for m in memory.messages if isinstance(m.meta.get(LC_ID), str)}
            thread = self._threads[thread_id] = _Thread(memory, archived)
            while len(self._threads) > self._max_threads:
                _, dropped = self._threads.popitem(last=False)
                dropped.memory.close()
            return thread


class FiniteMemoryChatMessageHistory(BaseChatMessageHistory):  # type: ignore[misc]
    """A ``BaseChatMessageHistory`` whose ``messages`` are the policy's context, not the whole archive.

    ``messages`` is the context for the last human message, within the memory's budget
    (leave ``reserve_output`` room for the new input and the reply); :meth:`context`
    builds one for another question; ``archive`` holds every message. ``clear()``
    deletes the session from the memory's store and starts an empty memory with the
    same settings (``history.memory`` is then that new memory).
    """

    def __init__(self, memory: Memory) -> None:
        if not isinstance(memory, Memory):
            raise TypeError(f"memory must be a finite_memory.Memory, not {type(memory).__name__}")
        self.memory = memory

    @property
    def messages(self) -> list[BaseMessage]:
        last_user = next((m.content for m in reversed(self.memory.messages) if m.role == "user"), None)
        return self.context(last_user)

    def context(self, query: str | None = None) -> list[BaseMessage]:
        """The policy's context for ``query``, as LangChain messages (system first)."""
        return [to_langchain(m) for m in self.memory.context(query=query).messages]

    @property
    def archive(self) -> list[BaseMessage]:
        """Every archived message, oldest first."""
        return [to_langchain(m) for m in self.memory.messages]

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self.memory.extend([from_langchain(m) for m in messages])

    def clear(self) -> None:
        self.memory = emptied(self.memory)


def _thread_id(runtime: Any) -> str:
    thread_id = getattr(getattr(runtime, "execution_info", None), "thread_id", None)
    if thread_id is None:
        try:
            from langgraph.config import get_config

            thread_id = (get_config().get("configurable") or {}).get("thread_id")
        except RuntimeError:  # not inside a run
            thread_id = None
    return str(thread_id) if thread_id is not None else "default"


def _newest_human_text(messages: Sequence[BaseMessage]) -> str | None:
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            return text_of(message)
    return None


def _tools_text(tools: Sequence[Any]) -> str:
    """The tools' schemas as JSON, the way they count against a prompt."""
    if not tools:
        return ""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    return json.dumps([convert_to_openai_tool(t) for t in tools], ensure_ascii=False)


def _with_extra(system: SystemMessage | None, extra: list[str]) -> SystemMessage | None:
    """The request's system message with the context's other system texts (a summary) after it."""
    if not extra:
        return system
    text = "\n\n".join(extra)
    if system is None:
        return SystemMessage(content=text)
    if isinstance(system.content, str):
        return SystemMessage(content=f"{system.content}\n\n{text}" if system.content else text)
    return SystemMessage(content=[*system.content, {"type": "text", "text": text}])
