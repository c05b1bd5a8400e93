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
    assert tok.samples == 1 and tok.margin == pytest.approx(0.1), "one observation: the prior margin"
    # the count is the fit plus its safety margin: never under the real count, over it by the margin at most
    assert real <= tok.count_messages(messages) <= real * (1 + tok.margin) + 2
    for _ in range(3):
        tok.calibrate(messages, real)  # the same observation again: the fit was right, the margin shrinks
    assert tok.margin == pytest.approx(0.02, abs=0.005)
    revision = tok.revision
    tok.calibrate(messages, real)
    assert tok.revision == revision, "no change, no revision"
    assert real <= tok.count_messages(messages) <= real * 1.03


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
    for _ in range(8):  # each step down is bounded (x0.75), so following a drop takes a few replies
        tok.calibrate(messages, raw_tokens + overhead)
    assert tok.scale == pytest.approx(1.0, rel=0.05)  # a plain running sum would still say 1.1


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
    assert real(fresh) <= tok.count_messages(fresh) <= (1 + tok.margin + 0.01) * real(fresh)
    assert tok.margin <= 0.05


def test_one_bad_report_moves_the_scale_a_bounded_step() -> None:
    tok = ApproxTokenizer()
    messages = [Message("user", "abcd " * 400)]
    honest = tok.count_messages(messages)
    for _ in range(3):
        tok.calibrate(messages, honest)
    scale = tok.scale
    tok.calibrate(messages, 10)  # a server that reports absurdly few tokens
    assert tok.scale >= 0.75 * scale * 0.99
    for _ in range(3):
        tok.calibrate(messages, 10)
    assert tok.scale >= 0.3 * scale, "three lies shrink the budget's reach by a bounded factor"
    assert tok.margin <= 0.5


def test_margin_learns_from_the_fits_underestimates() -> None:
    tok = ApproxTokenizer()
    noisy = [Message("user", "abcd " * (100 + 37 * i % 90)) for i in range(12)]
    for i, message in enumerate(noisy):
        raw = tok.count_messages([message])
        tok.calibrate([message], round(raw * (1.0 if i % 2 else 1.2)))  # reports wobble by 20 %
    assert 0.1 <= tok.margin <= 0.5


@pytest.mark.parametrize(
    "state",
    [
        {"scale": 1e9, "seen_tokens": 1, "seen_raw": 1},
        {"scale": float("nan"), "seen_tokens": 1, "seen_raw": 1},
        {"scale": 1.0, "seen_tokens": -5, "seen_raw": 1},
        {"scale": 1.0, "seen_tokens": 1, "seen_raw": 1, "margin": 7},
        {"scale": 1.0, "seen_tokens": 1, "seen_raw": 1, "samples": "many"},
        {"scale": 1.0, "seen_tokens": 1, "seen_raw": 1, "errors": [0.1] * 50},
        "not a dict",
    ],
)
def test_a_crafted_calibration_is_refused_and_changes_nothing(state: object) -> None:
    tok = ApproxTokenizer()
    tok.calibrate([Message("user", "abc " * 50)], 150)
    before = tok.state()
    with pytest.raises(ValueError, match="calibration"):
        tok.load_state(state)  # type: ignore[arg-type]
    assert tok.state() == before


def test_overheads_are_bounded() -> None:
    with pytest.raises(ValueError, match="per_prompt"):
        ApproxTokenizer(per_prompt=10**9)
    old = ApproxTokenizer()
    old.load_state({"scale": 1.5, "seen_tokens": 15.0, "seen_raw": 10.0})  # a state saved before margins existed
    assert old.samples == 1 and old.margin == pytest.approx(0.1)
