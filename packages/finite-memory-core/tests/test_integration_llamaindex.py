"""The LlamaIndex integration with the real llama-index-core ``FunctionAgent`` and a recording mock LLM."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, MessageRole, TextBlock, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool

from finite_memory import Memory
from finite_memory.integrations._llamaindex_messages import from_llamaindex, to_llamaindex
from finite_memory.integrations.llamaindex import FiniteMemoryBuffer

# llama-index's workflow engine runs inspect.getmembers over its pydantic agents: not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::pydantic.warnings.PydanticDeprecationWarning")


def weather(city: str = "Lisbon") -> str:
    """The weather in a city."""
    return f"18 C and sunny in {city}"


class Script:
    """The mock LLM's replies: a tool call for a weather question, then an answer; records every call."""

    def __init__(self) -> None:
        self.calls: list[list[ChatMessage]] = []

    def __call__(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self.calls.append(list(messages))
        last = messages[-1]
        if last.role == MessageRole.TOOL:
            return ChatMessage(role="assistant", content=f"The tool says: {last.content}")
        if "weather" in (last.content or ""):
            call_id = f"call-{len(self.calls)}"
            call = ToolCallBlock(tool_call_id=call_id, tool_name="weather", tool_kwargs={"city": "Oslo"})
            return ChatMessage(role="assistant", blocks=[call])
        return ChatMessage(role="assistant", content=f"Noted: {(last.content or '')[:30]}")


async def test_a_function_agent_runs_on_the_finite_memory(tmp_path: Path) -> None:
    script = Script()
    llm = MockFunctionCallingLLM(response_generator=script, is_chat_model=True)
    agent = FunctionAgent(llm=llm, tools=[FunctionTool.from_defaults(weather)], system_prompt="Be terse.")
    url = f"sqlite:///{tmp_path / 'li.db'}"
    buffer = FiniteMemoryBuffer(Memory("hybrid", max_tokens=420, reserve_output=60, store=url, session="u1"))
    await agent.run("My favourite colour is teal.", memory=buffer)
    for i in range(14):
        await agent.run(f"Note {i}: the parcel {i} went to depot {i * 3} on route {i % 5}.", memory=buffer)
    answer = await agent.run("What is the weather in Oslo?", memory=buffer)
    assert str(answer).startswith("The tool says: 18 C and sunny in Oslo")
    archive = buffer.get_all()
    assert len(archive) == 2 * 15 + 4  # the tool call and its result are archived with the turn
    (call,) = [b for b in archive[-3].blocks if isinstance(b, ToolCallBlock)]
    assert archive[-2].role == MessageRole.TOOL and archive[-2].additional_kwargs["tool_call_id"] == call.tool_call_id
    first_call_of_last_run = script.calls[-2]
    assert first_call_of_last_run[0].content == "Be terse."
    assert first_call_of_last_run[-1].content == "What is the weather in Oslo?"
    assert len(first_call_of_last_run) < len(archive)
    memory = buffer.memory
    sent = [from_llamaindex(m) for m in first_call_of_last_run[1:]]
    assert memory.tokenizer.count_messages(sent) <= 420 - 60

    reopened = FiniteMemoryBuffer(Memory("hybrid", max_tokens=420, reserve_output=60, store=url, session="u1"))
    assert "My favourite colour is teal." in [m.content for m in reopened.get("What is my favourite colour?")]


def test_get_put_set_and_reset() -> None:
    buffer = FiniteMemoryBuffer.from_defaults(policy="sliding", max_tokens=120, reserve_output=0)
    assert buffer.class_name() == "FiniteMemoryBuffer" and buffer.get() == []
    for i in range(12):
        buffer.put(ChatMessage(role="user", content=f"question {i} about trains and buses"))
        buffer.put(ChatMessage(role="assistant", content=f"answer {i}"))
    context = buffer.get()
    assert 0 < len(context) < 24 and context[-1].content == "answer 11"
    assert len(buffer.get_all()) == 24
    buffer.set([ChatMessage(role="system", content="rules"), ChatMessage(role="user", content="fresh")])
    assert [m.content for m in buffer.get_all()] == ["rules", "fresh"]
    assert buffer.get()[0].content == "rules"
    buffer.reset()
    assert buffer.get_all() == []
    with pytest.raises(TypeError, match="Memory"):
        FiniteMemoryBuffer("nope")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tool_call_id"):
        buffer.put(ChatMessage(role="tool", content="42"))


def test_messages_come_back_as_they_went_in() -> None:
    call = ToolCallBlock(tool_call_id="c9", tool_name="weather", tool_kwargs={"city": "Rome"})
    openai_style = {"id": "c10", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Bern"}'}}
    messages = [
        ChatMessage(role="user", blocks=[TextBlock(text="hello"), TextBlock(text="there")]),
        ChatMessage(role="assistant", blocks=[call], additional_kwargs={"tool_calls": [openai_style]}),
        ChatMessage(role="tool", content="sunny", additional_kwargs={"tool_call_id": "c9", "name": "weather"}),
        ChatMessage(role="tool", content="rain", additional_kwargs={"tool_call_id": "c10"}),
    ]
    archived = [from_llamaindex(m) for m in messages]
    assert archived[0].content == "hello\nthere"
    assert [c["id"] for c in archived[1].tool_calls or ()] == ["c9", "c10"]
    assert archived[2].name == "weather"
    assert [to_llamaindex(m) for m in archived] == messages
    cut = archived[0].with_content("hel")  # a truncated copy is rebuilt from its fields
    assert to_llamaindex(cut).content == "hel"
    rebuilt = to_llamaindex(archived[1].__class__("assistant", "", tool_calls=archived[1].tool_calls))
    assert [b.tool_kwargs for b in rebuilt.blocks] == [{"city": "Rome"}, {"city": "Bern"}]
    with pytest.raises(ValueError, match="role"):
        from_llamaindex(ChatMessage(role="user", content="x").model_copy(update={"role": "narrator"}))


def test_a_missing_framework_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "finite_memory.integrations.llamaindex")
    monkeypatch.setitem(sys.modules, "llama_index.core.memory", None)
    with pytest.raises(ImportError, match=r'pip install "finite-memory-core\[llamaindex\]"'):
        importlib.import_module("finite_memory.integrations.llamaindex")
