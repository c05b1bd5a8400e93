"""Against a real OpenAI-compatible server: ``transformers serve`` on 127.0.0.1, a tiny model built here.

The model is a random-weight Llama with a locally trained tokenizer and a ChatML template
(no download). Over 26 turns with eviction, for ``sliding`` and ``hybrid``, cycling through
send, stream, asend and astream: with the model's own ``tokenizer.json`` the server's
``prompt_tokens`` equal the memory's count and never exceed the budget; with the estimate
alone the overruns are counted and bounded; a stopped server gives ``BackendError`` and
leaves the memory unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _api_chats import MODES, turn
from _transformers_serve import Served, start

from finite_memory import ApproxTokenizer, BackendError, Chat, Memory
from finite_memory.eval.locomo import dialogue
from finite_memory.eval.synthetic import generate_conversation
from finite_memory_api import LocalTokenizer, OpenAIBackend, Retry

TURNS = 26
SYSTEM = "You are a helpful assistant who remembers what the user tells you."


def user_lines() -> list[str]:
    lines = [m.content for m in dialogue(generate_conversation(11, sessions=4)) if m.role == "user"]
    return lines[:TURNS]


def make(served: Served, policy: str, *, exact: bool) -> Chat:
    backend = OpenAIBackend(
        str(served.model),
        base_url=served.url + "/v1",
        tokenizer=str(served.model) if exact else None,
        retry=Retry(max_retries=1, backoff=0.05),
        timeout=30,
    )
    return Chat(backend, Memory(policy, max_tokens=360, reserve_output=8, system=SYSTEM))


@pytest.mark.parametrize("policy", ["sliding", "hybrid"])
def test_with_the_local_tokenizer_the_server_counts_what_the_memory_counted(served: Served, policy: str) -> None:
    chat = make(served, policy, exact=True)
    assert isinstance(chat.memory.tokenizer, LocalTokenizer)
    dropped = []
    for i, text in enumerate(user_lines()):
        turn(chat, MODES[i % len(MODES)], text, max_new_tokens=6)
        reply = chat.last_reply
        assert reply is not None
        assert reply.usage["prompt_tokens"] == reply.stats["context_tokens"], f"turn {i}: the count is exact"
        assert reply.usage["prompt_tokens"] <= chat.memory.budget, f"turn {i}: over the budget"
        assert reply.finish_reason == "length" and chat.memory.messages[-1].meta == {"finish_reason": "length"}
        dropped.append(reply.stats["dropped"])
    assert max(dropped) > 0, "the conversation outgrew the budget, so turns were evicted"
    assert len(chat.memory) == 2 * TURNS


@pytest.mark.parametrize("policy", ["sliding", "hybrid"])
def test_with_the_estimate_alone_overruns_are_rare_and_small(served: Served, policy: str) -> None:
    chat = make(served, policy, exact=False)
    budget = chat.memory.budget
    over, errors = [], []
    for i, text in enumerate(user_lines()):
        turn(chat, MODES[i % len(MODES)], text, max_new_tokens=6)
        reply = chat.last_reply
        assert reply is not None
        prompt = reply.usage["prompt_tokens"]
        errors.append((reply.stats["context_tokens"] - prompt) / prompt)
        if prompt > budget:
            over.append((prompt - budget) / budget)
    tokenizer = chat.memory.tokenizer
    assert isinstance(tokenizer, ApproxTokenizer) and tokenizer.scale > 1.2, "the tiny tokenizer needs > chars/4"
    print(
        f"\n{policy}: {len(over)}/{TURNS} turns over the budget (target <= 1), worst {max(over, default=0):.1%} "
        f"(target <= 2%); estimate minus server count: mean {sum(errors) / len(errors):+.1%}, "
        f"lowest {min(errors):+.1%}; scale {tokenizer.scale:.3f}, margin {tokenizer.margin:.3f}"
    )
    assert len(over) <= 1 and max(over, default=0) <= 0.02


def test_a_server_stopped_mid_conversation_is_a_backend_error_and_changes_nothing(tiny_model: Path) -> None:
    own = start(tiny_model)  # not the shared server: this one is stopped
    try:
        chat = make(own, "hybrid", exact=True)
        for text in user_lines()[:3]:
            chat.send(text, max_new_tokens=4)
        before = chat.memory.messages
    finally:
        own.stop()
    for mode in MODES:
        with pytest.raises(BackendError, match="connection failed"):
            turn(chat, mode, "are you still there?", max_new_tokens=4)
        assert chat.memory.messages == before
