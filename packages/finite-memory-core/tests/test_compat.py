from __future__ import annotations

from finite_memory.compat import CompleteFiniteMemoryLLM
from finite_memory.testing import EchoBackend


def test_reference_api_returns_a_dict() -> None:
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=256, memory_policy="sliding", window_size=64)
    result = llm.chat("Hello! My name is Alice.", max_new_tokens=3)
    assert result["response"] == "echo: Hello! My"
    assert result["memory_policy"] == "sliding"
    assert 0 < result["context_length"] <= 256
    assert result["tokens_used"] == 3
    assert result["stats"]["policy"] == "sliding"
    assert [m["role"] for m in llm.conversation_history] == ["user", "assistant"]
    assert "user: Hello! My name is Alice." in llm.get_context_window()
    assert llm.chat("   ")["response"] == ""
    llm.reset()
    assert llm.conversation_history == []


def test_backend_spec_string_works() -> None:
    llm = CompleteFiniteMemoryLLM("echo:x", max_tokens=128)
    assert llm.chat("ping")["response"] == "echo: ping"
    assert llm.backend.name == "echo:x"


def test_checkpoints_round_trip_through_the_adapter(tmp_path) -> None:  # type: ignore[no-untyped-def]
    llm = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=256)
    llm.chat("remember the number 42")
    path = llm.save_checkpoint(tmp_path / "chat.json")
    other = CompleteFiniteMemoryLLM(EchoBackend(), max_tokens=256)
    config = other.load_checkpoint(path)
    assert config == {"max_tokens": 256, "memory_policy": "sliding"}
    assert other.conversation_history == llm.conversation_history
