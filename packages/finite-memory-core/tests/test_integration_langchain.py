"""The LangChain integration with the real langchain v1 ``create_agent`` and a recording fake chat model."""

from __future__ import annotations

import importlib
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("langchain.agents")

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.checkpoint.memory import InMemorySaver
from pydantic import Field

from finite_memory import Memory, Message
from finite_memory.integrations._langchain_messages import from_langchain, to_langchain
from finite_memory.integrations.langchain import (
    FiniteMemoryChatMessageHistory,
    FiniteMemoryMiddleware,
)


class RecordingModel(BaseChatModel):
    """A fake chat model: records what it is sent and answers with ``respond(messages)``."""

    respond: Callable[[list[BaseMessage]], AIMessage]
    calls: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "recording"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        self.calls.append(list(messages))
        return ChatResult(generations=[ChatGeneration(message=self.respond(list(messages)))])

    def bind_tools(self, tools: Any, **kwargs: Any) -> RecordingModel:
        return self


@tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"18 C and sunny in {city}"


def answer(messages: list[BaseMessage]) -> AIMessage:
    """Call the weather tool for a weather question, then answer; otherwise acknowledge."""
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return AIMessage(content=f"The tool says: {last.content}")
    question = str(last.content)
    if "weather" in question:
        return AIMessage(content="", tool_calls=[{"name": "weather", "args": {"city": "Lisbon"}, "id": "call_w"}])
    return AIMessage(content=f"Noted: {question[:40]}")


def run(agent: Any, text: str, thread: str, *, checkpointer: bool = True) -> list[BaseMessage]:
    config = {"configurable": {"thread_id": thread}}
    return list(agent.invoke({"messages": [HumanMessage(text)]}, config)["messages"])


def budgeted_tokens(memory: Memory, sent: list[BaseMessage], tools: list[Any]) -> int:
    """Tokens of what the model was sent, its system prompt and tool schemas included."""
    schemas = json.dumps([convert_to_openai_tool(t) for t in tools], ensure_ascii=False)
    system = Message("system", f"{sent[0].content}\n\n{schemas}")
    return memory.tokenizer.count_messages([system, *(from_langchain(m) for m in sent[1:])])


def calls_answered_in_order(sent: list[BaseMessage]) -> bool:
    """Every tool result follows the message that made its call."""
    made: set[str] = set()
    for message in sent:
        if isinstance(message, AIMessage):
            made.update(call["id"] for call in message.tool_calls)
        if isinstance(message, ToolMessage) and message.tool_call_id not in made:
            return False
    return True


def test_the_model_sees_a_bounded_context_while_the_state_keeps_everything() -> None:
    model = RecordingModel(respond=answer)
    middleware = FiniteMemoryMiddleware(policy="sliding", max_tokens=300, reserve_output=40)
    agent = create_agent(
        model, [weather], system_prompt="You are terse.", middleware=[middleware], checkpointer=InMemorySaver()
    )
    for i in range(15):
        state = run(agent, f"Fact {i}: item {i} is stored in box {i * 7} on shelf {i % 4}.", "t1")
    state = run(agent, "What is the weather like?", "t1")
    assert len(state) == 15 * 2 + 4  # every message stays in the agent's state
    memory = middleware.memory("t1")
    assert len(memory.messages) == len(state)  # and in the archive
    for sent in model.calls:
        assert isinstance(sent[0], SystemMessage) and sent[0].content == "You are terse."
        assert budgeted_tokens(memory, sent, [weather]) <= 300 - 40
        assert calls_answered_in_order(sent)
    last = model.calls[-1]
    assert len(last) < len(state)
    assert isinstance(last[-1], ToolMessage) and last[-2].tool_calls[0]["id"] == "call_w"  # call and result together
    assert last[-3].content == "What is the weather like?"
    assert state[-1].content == "The tool says: 18 C and sunny in Lisbon"
    assert [m.id for m in last[1:]] == [m.id for m in state[-len(last) : -1]]  # the newest exchanges, same ids


def test_a_running_summary_joins_the_system_message() -> None:
    model = RecordingModel(respond=answer)
    middleware = FiniteMemoryMiddleware(policy="rolling_summary", max_tokens=260, reserve_output=20)
    agent = create_agent(model, [], system_prompt="Be brief.", middleware=[middleware], checkpointer=InMemorySaver())
    for i in range(20):
        run(agent, f"On day {i} Alice met Bob in city number {i} and paid {i * 3} euros.", "s")
    system = model.calls[-1][0]
    assert system.content.startswith("Be brief.\n\nSummary of the earlier conversation")
    assert sum(isinstance(m, SystemMessage) for m in model.calls[-1]) == 1


def test_a_persistent_store_carries_the_archive_across_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'agent.db'}"
    first = FiniteMemoryMiddleware(policy="semantic", max_tokens=400, reserve_output=40, store=url)
    agent = create_agent(RecordingModel(respond=answer), [], middleware=[first])  # no checkpointer
    run(agent, "My cat is called Tom and he likes sardines.", "user-7")
    for i in range(12):
        run(agent, f"Unrelated note {i} about gardening tools and spring bulbs.", "user-7")
    first.memory("user-7").close()

    model = RecordingModel(respond=answer)
    again = FiniteMemoryMiddleware(policy="semantic", max_tokens=400, reserve_output=40, store=url)
    agent = create_agent(model, [], middleware=[again])
    state = run(agent, "What is my cat called?", "user-7")
    assert len(state) == 2  # without a checkpointer the state holds this invocation only
    seen = [str(m.content) for m in model.calls[-1]]
    assert "My cat is called Tom and he likes sardines." in seen  # retrieved from the stored archive
    assert len(again.memory("user-7").messages) == 2 * 14
    assert again.memory("other").messages == []  # threads are separate sessions


async def test_the_async_agent_works_the_same() -> None:
    model = RecordingModel(respond=answer)
    middleware = FiniteMemoryMiddleware(policy="sliding", max_tokens=200, reserve_output=20)
    agent = create_agent(model, [weather], middleware=[middleware], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "a"}}
    for i in range(10):
        await agent.ainvoke({"messages": [HumanMessage(f"async message {i} with some padding words")]}, config)
    result = await agent.ainvoke({"messages": [HumanMessage("and the weather?")]}, config)
    assert result["messages"][-1].content.startswith("The tool says")
    assert len(model.calls[-1]) < len(result["messages"])
    assert len(middleware.memory("a").messages) == len(result["messages"])


def test_bad_settings_fail_when_the_middleware_is_built() -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        FiniteMemoryMiddleware(policy="nope")
    with pytest.raises(ValueError, match="max_threads"):
        FiniteMemoryMiddleware(max_threads=0)
    with pytest.raises(TypeError):
        FiniteMemoryMiddleware(policy="sliding", not_an_option=1)


def test_old_threads_are_dropped_beyond_max_threads() -> None:
    middleware = FiniteMemoryMiddleware(policy="sliding", max_tokens=200, max_threads=2)
    a = middleware.memory("a")
    middleware.memory("b")
    middleware.memory("c")
    assert middleware.memory("a") is not a  # "a" was the least recently used


def test_messages_round_trip_through_the_archive_form() -> None:
    call = {"name": "weather", "args": {"city": "Oslo"}, "id": "c1", "type": "tool_call"}
    messages = [
        SystemMessage("rules", id="s"),
        HumanMessage("hi", id="h", name="alice"),
        AIMessage("", tool_calls=[call], id="a"),
        ToolMessage("cold", tool_call_id="c1", id="t"),
        AIMessage([{"type": "text", "text": "It is "}, {"type": "text", "text": "cold."}], id="b"),
    ]
    back = [to_langchain(from_langchain(m)) for m in messages]
    assert [type(m) for m in back] == [type(m) for m in messages]
    assert [m.id for m in back] == ["s", "h", "a", "t", "b"]
    assert back[1].name == "alice" and back[2].tool_calls == [call] and back[3].tool_call_id == "c1"
    assert back[4].content == "It is cold."
    with pytest.raises(TypeError, match="cannot archive"):
        from_langchain(BaseMessage(content="x", type="custom"))  # type: ignore[abstract]


def test_chat_message_history_gives_the_context_and_clears(tmp_path: Path) -> None:
    memory = Memory("semantic", max_tokens=200, reserve_output=40, store=f"sqlite:///{tmp_path / 'h.db'}", session="s")
    history = FiniteMemoryChatMessageHistory(memory)
    history.add_messages([HumanMessage("My dog is Rex."), AIMessage("Nice name!")])
    for i in range(20):
        history.add_user_message(f"filler message {i} about the weather and trains")
        history.add_ai_message(f"reply {i}")
    assert len(history.archive) == 42
    assert len(history.messages) < 42
    assert "My dog is Rex." in [m.content for m in history.context("What is my dog called?")]
    history.clear()
    assert history.archive == [] and history.messages == []
    assert history.memory.policy.name == "semantic" and history.memory.session == "s"
    reopened = Memory("semantic", max_tokens=200, store=f"sqlite:///{tmp_path / 'h.db'}", session="s")
    assert reopened.messages == []  # the store's session is gone too
    with pytest.raises(TypeError, match="Memory"):
        FiniteMemoryChatMessageHistory("not a memory")  # type: ignore[arg-type]


def test_chat_message_history_in_runnable_with_message_history() -> None:
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    model = RecordingModel(respond=answer)
    histories: dict[str, FiniteMemoryChatMessageHistory] = {}

    def history_for(session_id: str) -> FiniteMemoryChatMessageHistory:
        return histories.setdefault(session_id, FiniteMemoryChatMessageHistory(Memory("sliding", max_tokens=160)))

    prompt = ChatPromptTemplate.from_messages([MessagesPlaceholder("history"), ("human", "{question}")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        chain = RunnableWithMessageHistory(
            prompt | model, history_for, input_messages_key="question", history_messages_key="history"
        )
    for i in range(15):
        chain.invoke({"question": f"question {i} about a long topic"}, {"configurable": {"session_id": "x"}})
    assert len(histories["x"].archive) == 30
    assert len(model.calls[-1]) < 30  # the chain saw the bounded context plus the new question


def test_a_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "finite_memory.integrations.langchain")
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    with pytest.raises(ImportError, match=r'pip install "finite-memory-core\[langchain\]"'):
        importlib.import_module("finite_memory.integrations.langchain")
