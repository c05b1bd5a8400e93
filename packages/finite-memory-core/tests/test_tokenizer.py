from __future__ import annotations

import pytest

from finite_memory import ApproxTokenizer, Message, Tokenizer


def test_counts_grow_with_text_and_overhead() -> None:
    tok = ApproxTokenizer()
    assert isinstance(tok, Tokenizer)
    assert tok.count("") == 0
    assert tok.count("abcd" * 100) == 100
    assert tok.count("東京" * 10) > tok.count("ab" * 10)  # multi-byte text costs more per character
    messages = [Message("user", "hello world"), Message("assistant", "hi")]
    assert tok.count_messages(messages) == tok.per_prompt + sum(tok.count_message(m) for m in messages)
    assert tok.count_messages([]) == tok.per_prompt


def test_tool_calls_and_names_are_counted() -> None:
    tok = ApproxTokenizer()
    plain = Message("assistant", "")
    call = Message("assistant", "", tool_calls=[{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}])
    assert tok.count_message(call) > tok.count_message(plain)
    assert tok.count_message(Message("user", "x", name="alice")) > tok.count_message(Message("user", "x"))


def test_calibration_converges_to_a_real_tokenizer_and_bumps_revision() -> None:
    tok = ApproxTokenizer()
    messages = [Message("user", "word " * 200), Message("assistant", "reply " * 100)]
    # a "real" tokenizer that counts one token per word plus the same fixed overheads
    real = 300 + tok.per_prompt + tok.per_message * 2
    before = tok.revision
    tok.calibrate(messages, real)
    assert tok.revision == before + 1
    assert abs(tok.count_messages(messages) - real) <= 0.02 * real
    revision = tok.revision
    tok.calibrate(messages, real)  # the same observation again: no change, no revision
    assert tok.revision == revision


def test_calibration_rejects_bad_usage_and_state_round_trips() -> None:
    tok = ApproxTokenizer()
    with pytest.raises(ValueError, match="positive int"):
        tok.calibrate([Message("user", "x")], 0)
    tok.calibrate([Message("user", "abc " * 50)], 150)
    other = ApproxTokenizer()
    other.load_state(tok.state())
    assert other.scale == tok.scale
    assert "scale" in repr(other)
    with pytest.raises(ValueError):
        ApproxTokenizer(scale=0)
    with pytest.raises(ValueError):
        ApproxTokenizer(per_message=-1)


def test_calibration_follows_recent_prompts_over_the_first_ones() -> None:
    # The first prompt is counted at 2 tokens per estimated token, the next ones at 1:
    # recent prompts hold the conversation as it is now, so the fit must follow them.
    tok = ApproxTokenizer()
    messages = [Message("user", "abcd " * 200)]
    raw_tokens = tok.count_messages(messages) - tok.per_prompt - tok.per_message
    overhead = tok.per_prompt + tok.per_message
    tok.calibrate(messages, 2 * raw_tokens + overhead)
    assert tok.scale == pytest.approx(2.0, rel=0.01)
    for _ in range(4):
        tok.calibrate(messages, raw_tokens + overhead)
    assert tok.scale == pytest.approx(1.0, rel=0.05)  # a plain running sum would still say 1.2


def test_calibration_leaves_out_the_rounding_of_each_message() -> None:
    # A "real" tokenizer whose per-message counts are 1.3 x the raw estimate, rounded to
    # the nearest token; the estimate rounds each message up, so a fit that ignored that
    # would over-count every prompt of many short messages by half a token a message.
    tok = ApproxTokenizer()

    def real(messages: list[Message]) -> int:
        return tok.per_prompt + sum(tok.per_message + round(1.3 * len(m.content) / 4) for m in messages)

    def conversation(start: int) -> list[Message]:
        return [Message("user", "w" * (5 + (i * 7) % 23)) for i in range(start, start + 60)]

    for start in range(0, 300, 60):
        tok.calibrate(conversation(start), real(conversation(start)))
    fresh = conversation(1000)
    assert abs(tok.count_messages(fresh) - real(fresh)) <= 0.01 * real(fresh)
