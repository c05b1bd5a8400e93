"""Backends written for the reference (``encode``/``decode``/``generate`` on torch tensors) through compat."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from finite_memory import BackendError
from finite_memory.compat import APIChatBackend, CompleteFiniteMemoryLLM, LLMBackend

torch = pytest.importorskip("torch")


class CharModel(LLMBackend):
    """One token per character; ``generate`` appends a fixed reply and records each input tensor."""

    def __init__(self, reply: str = "Fine.") -> None:
        self.reply = reply
        self.inputs: list[Any] = []

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, tokens: list[int]) -> str:
        return "".join(chr(t) for t in tokens)

    def get_model_name(self) -> str:
        return "char-model"

    def generate(self, input_ids: Any, max_new_tokens: int, **kwargs: Any) -> dict[str, Any]:
        self.inputs.append(input_ids)
        new = self.encode(self.reply)[:max_new_tokens]
        return {"sequences": torch.tensor([input_ids[0].tolist() + new])}


def test_the_model_gets_a_tensor_transcript_within_the_budget() -> None:
    model = CharModel()
    llm = CompleteFiniteMemoryLLM(model, max_tokens=100, memory_policy="sliding")
    result = llm.chat("Hello there", max_new_tokens=3)
    sent = model.inputs[0]
    assert isinstance(sent, torch.Tensor) and sent.dtype == torch.long and sent.shape[0] == 1
    assert model.decode(sent[0].tolist()) == "user: Hello there\nassistant:"
    assert result["response"] == "Fin" and result["tokens_used"] == 3
    assert result["context_length"] == sent.shape[1]
    assert list(llm.token_buffer) == sent[0].tolist() + model.encode("Fin")
    for i in range(40):
        llm.chat(f"message {i} about something else entirely")
    assert max(t.shape[1] for t in model.inputs) <= 100
    assert llm.stats.evictions > 0 and llm.stats.tokens_seen > 100


def test_a_duck_typed_mock_backend_works_like_in_the_reference() -> None:
    backend = Mock()  # every attribute exists on a Mock: only encode/decode/generate are used
    backend.encode = lambda text: [ord(c) for c in text[:10]]
    backend.decode = lambda tokens: "".join(chr(min(t, 127)) for t in tokens)
    backend.get_model_name = lambda: "mock"
    backend.generate = lambda ids, max_new_tokens, **kw: {"sequences": torch.tensor([[*ids[0].tolist(), 72]])}
    llm = CompleteFiniteMemoryLLM(backend, max_tokens=64, memory_policy="importance")
    for i in range(8):
        assert llm.chat(f"Message {i}")["response"] == "H"
    assert len(llm.conversation_history) == 16
    assert llm.chat_backend.name == "mock"


def test_a_generate_that_fails_or_returns_nonsense_raises_backend_error() -> None:
    model = CharModel()
    model.generate = Mock(side_effect=RuntimeError("CUDA out of memory"))  # type: ignore[method-assign]
    llm = CompleteFiniteMemoryLLM(model, max_tokens=64)
    with pytest.raises(BackendError, match="CUDA out of memory"):
        llm.chat("hi")
    assert llm.conversation_history == [] and llm.stats.tokens_seen == 0
    model.generate = Mock(return_value=[[1, 2, 3]])  # type: ignore[method-assign]
    with pytest.raises(BackendError, match="must return"):
        llm.chat("hi")


def test_api_chat_backend_generate_keeps_tensors() -> None:
    class Tok:
        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return [ord(c) for c in text]

        def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
            return "".join(map(chr, ids))

    backend = APIChatBackend(Tok(), lambda prompt, n: prompt.upper())
    out = backend.generate(torch.tensor([[104, 105]]), max_new_tokens=5)
    assert isinstance(out["sequences"], torch.Tensor)
    assert out["sequences"].tolist() == [[104, 105, 72, 73]]


_outputs = st.recursive(
    st.none() | st.integers(-3, 300) | st.text(max_size=3) | st.floats(allow_nan=True),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.sampled_from(["sequences", "x"]), inner, max_size=2),
    max_leaves=15,
)


@settings(max_examples=200, deadline=None)
@given(output=_outputs)
def test_whatever_generate_returns_the_turn_succeeds_or_fails_cleanly(output: Any) -> None:
    model = CharModel()
    model.generate = lambda input_ids, max_new_tokens, **kw: output  # type: ignore[method-assign]
    llm = CompleteFiniteMemoryLLM(model, max_tokens=64)
    try:
        result = llm.chat("hi")
    except BackendError:
        assert llm.conversation_history == [] and llm.stats.tokens_seen == 0
    else:
        assert isinstance(result["response"], str) and len(llm.conversation_history) == 2
