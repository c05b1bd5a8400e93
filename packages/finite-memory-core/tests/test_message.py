from __future__ import annotations

import pytest

from finite_memory import Message


def test_round_trip_keeps_every_field() -> None:
    message = Message(
        "assistant",
        "",
        name="bot",
        tool_calls=[{"id": "c1", "function": {"name": "f", "arguments": "{}"}}],
        meta={"date": "2024-01-01"},
    )
    again = Message.from_dict(message.to_dict())
    assert again == message
    assert again.tool_calls == ({"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},)
    assert again.tool_call_ids == ("c1",)


def test_message_is_immutable() -> None:
    message = Message("user", "hi")
    with pytest.raises(AttributeError):
        message.content = "changed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"role": "robot", "content": "x"}, ValueError, "allowed roles: system, user, assistant, tool"),
        ({"role": "user", "content": 3}, TypeError, "content must be str, not int"),
        ({"role": "user", "content": None}, TypeError, "content must be str"),
        ({"role": "tool", "content": "x"}, ValueError, "needs tool_call_id"),
        ({"role": "user", "content": "x", "tool_call_id": "c"}, ValueError, "only a tool message"),
        ({"role": "user", "content": "x", "tool_calls": [{"id": "c"}]}, ValueError, "only an assistant"),
        ({"role": "assistant", "content": "", "tool_calls": [{"id": "c"}]}, ValueError, "'function'"),
        ({"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}, ValueError, "'id'"),
        ({"role": "assistant", "content": "", "tool_calls": "x"}, TypeError, "list of dicts"),
        ({"role": "assistant", "content": "", "tool_calls": [3]}, TypeError, "must be a dict"),
        ({"role": "user", "content": "x", "meta": []}, TypeError, "meta must be a dict"),
        ({"role": "user", "content": "x", "meta": {"k": object()}}, TypeError, "JSON-serialisable"),
        ({"role": "user", "content": "x", "name": 5}, TypeError, "name must be str"),
    ],
)
def test_bad_messages_say_what_is_wrong(kwargs: dict[str, object], error: type[Exception], text: str) -> None:
    role = kwargs.pop("role")
    content = kwargs.pop("content")
    with pytest.raises(error, match=text):
        Message(role, content, **kwargs)  # type: ignore[arg-type]


def test_from_dict_rejects_bad_data() -> None:
    with pytest.raises(TypeError):
        Message.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown message fields: colour"):
        Message.from_dict({"role": "user", "content": "x", "colour": "red"})
    with pytest.raises(TypeError, match="id must be an int"):
        Message.from_dict({"role": "user", "content": "x", "id": "7"})
