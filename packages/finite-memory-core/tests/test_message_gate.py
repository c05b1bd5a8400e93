"""The one gate into the archive: whatever a Message accepts can be saved, stored and sent; nothing else gets in."""

from __future__ import annotations

import copy
import enum
import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from finite_memory import BackendError, Chat, CheckpointError, Memory, Message
from finite_memory import _checkpoint as checkpoint
from finite_memory._backend import Completion
from finite_memory._values import FrozenDict, FrozenList, loads_frozen
from finite_memory.policies import Sliding
from finite_memory.stores.sqlite import SQLiteStore
from finite_memory.testing import EchoBackend

LONE = "\ud800"


def call(arguments: Any = "{}", call_id: str = "c1", name: str = "f", **extra: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}, **extra}


BAD_TEXT = {
    "content": lambda bad: Message("user", bad),
    "name": lambda bad: Message("user", "x", name=bad),
    "tool_call_id": lambda bad: Message("tool", "x", tool_call_id=bad),
    "meta value": lambda bad: Message("user", "x", meta={"k": [bad]}),
    "meta key": lambda bad: Message("user", "x", meta={bad: 1}),
    "tool call id": lambda bad: Message("assistant", "", tool_calls=[call(call_id=bad)]),
    "function name": lambda bad: Message("assistant", "", tool_calls=[call(name=bad)]),
    "arguments": lambda bad: Message("assistant", "", tool_calls=[call(json.dumps({"q": bad}))]),
}


@pytest.mark.parametrize("field", BAD_TEXT)
@pytest.mark.parametrize("bad", [f"a{LONE}b", "\udfff", "low \udc80 from surrogateescape"])
def test_text_no_store_takes_is_refused_in_every_field(field: str, bad: str) -> None:
    with pytest.raises(ValueError, match="lone surrogate"):
        BAD_TEXT[field](bad)


def test_nul_and_other_control_characters_are_text_like_any_other() -> None:
    message = Message("tool", "bytes\x00read\x1b[0m", tool_call_id="c\x00", meta={"raw": "\x00"})
    assert Message.from_dict(json.loads(json.dumps(message.to_dict()))) == message


@pytest.mark.parametrize(
    ("meta", "error", "text"),
    [
        ({"score": math.nan}, ValueError, r"meta\['score'\] is nan"),
        ({"score": math.inf}, ValueError, "is inf"),
        ({"deep": {"list": [1, -math.inf]}}, ValueError, r"meta\['deep'\]\['list'\]\[1\] is -inf"),
        ({1: "int key"}, TypeError, "not a str"),
        ({"big": 2**64}, ValueError, "beyond 64 bits"),
        ({"set": {1, 2}}, TypeError, "set"),
        ({"bytes": b"x"}, TypeError, "bytes"),
        ({"deep": json.loads("[" * 40 + "]" * 40)}, ValueError, "deeper than"),
    ],
)
def test_meta_must_be_json_every_store_keeps(meta: dict[Any, Any], error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        Message("user", "x", meta=meta)


def test_meta_that_refers_to_itself_is_refused() -> None:
    loop: dict[str, Any] = {}
    loop["self"] = loop
    with pytest.raises(ValueError, match="refers to itself"):
        Message("user", "x", meta=loop)


@pytest.mark.parametrize(
    ("arguments", "error", "text"),
    [
        ("{bad", ValueError, "not JSON text"),
        ("[1, 2]", ValueError, "not a JSON object"),
        ('"text"', ValueError, "not a JSON object"),
        ('{"x": NaN}', ValueError, "not JSON text"),
        ('{"x": 1e999}', ValueError, "is inf"),
        ({"x": 1}, TypeError, "must be JSON text"),
    ],
)
def test_tool_call_arguments_must_be_a_json_object_as_text(arguments: Any, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        Message("assistant", "", tool_calls=[call(arguments)])


def test_tool_calls_are_normalised_and_checked() -> None:
    empty = Message("assistant", "", tool_calls=[call(""), call(None, "c2"), {"id": "c3", "function": {"name": "g"}}])
    assert [c["function"]["arguments"] for c in empty.tool_calls or ()] == ["{}", "{}", "{}"]
    with pytest.raises(ValueError, match="used twice"):
        Message("assistant", "", tool_calls=[call(), call()])
    with pytest.raises(ValueError, match="only 'function' calls"):
        Message("assistant", "", tool_calls=[call(type="code_interpreter")])
    with pytest.raises(ValueError, match="'function'"):
        Message("assistant", "", tool_calls=[call(name="")])


def test_meta_and_tool_calls_are_copied_and_frozen() -> None:
    meta: dict[str, Any] = {"source": "api", "tags": ["a"], "nested": {"n": 1}}
    calls = [call('{"q": 1}')]
    message = Message("assistant", "", tool_calls=calls, meta=meta)
    meta["source"] = "changed"
    meta["tags"].append("b")
    meta["nested"]["n"] = 2
    calls[0]["function"]["name"] = "changed"
    assert message.meta == {"source": "api", "tags": ["a"], "nested": {"n": 1}}
    assert message.tool_calls == (call('{"q": 1}'),)
    for change in (
        lambda: message.meta.__setitem__("x", 1),
        lambda: message.meta.update(x=1),
        lambda: message.meta.pop("source"),
        lambda: message.meta["tags"].append("c"),
        lambda: message.meta["nested"].clear(),
        lambda: message.tool_calls[0]["function"].__setitem__("name", "g"),  # type: ignore[index]
    ):
        with pytest.raises(TypeError, match="read-only"):
            change()
    assert message.meta == {"source": "api", "tags": ["a"], "nested": {"n": 1}}
    # frozen values still behave as plain JSON data
    assert json.loads(json.dumps(message.to_dict())) == message.to_dict()
    assert Message.from_dict(message.to_dict()) == message
    assert pickle.loads(pickle.dumps(message)) == message
    assert copy.deepcopy(message) == message
    assert hash(message) == hash(Message.from_dict(message.to_dict()))
    assert Message("user", "x", meta={"pair": (1, 2)}).meta == {"pair": [1, 2]}


def test_an_archived_message_cannot_be_changed_through_the_dict_given_to_add() -> None:
    memory = Memory()
    meta = {"pinned": False}
    message = memory.add("user", "hello", meta=meta)
    meta["pinned"] = True
    assert memory.messages[0].meta == {"pinned": False} == message.meta


def test_messages_read_back_from_sqlite_are_frozen_too(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'chats.db'}"
    with Memory(store=url) as memory:
        memory.add("user", "hi", meta={"tags": ["a"], "nested": {"n": 1}})
        memory.add("assistant", "", tool_calls=[call('{"q": [1]}')])
    with Memory(store=url) as again:
        first, second = again.messages
        assert first.meta == {"tags": ["a"], "nested": {"n": 1}} and first.meta["tags"] == ["a"]
        assert second.tool_calls == (call('{"q": [1]}'),)
        for change in (
            lambda: first.meta.__setitem__("x", 1),
            lambda: first.meta["tags"].append("b"),
            lambda: first.meta["nested"].clear(),
            lambda: second.tool_calls[0]["function"].__setitem__("name", "g"),  # type: ignore[index]
        ):
            with pytest.raises(TypeError, match="read-only"):
                change()


@pytest.mark.parametrize("store", ["memory", "sqlite"])
def test_a_refused_message_leaves_the_memory_saveable(tmp_path: Path, store: str) -> None:
    url = f"sqlite:///{tmp_path / 'chats.db'}" if store == "sqlite" else None
    memory = Memory(store=url)
    memory.add("user", "first")
    for bad in (
        lambda: memory.add("user", f"bad {LONE}"),
        lambda: memory.add("user", "x", meta={"score": math.nan}),
        lambda: memory.add("assistant", "", tool_calls=[call("{not json")]),
    ):
        with pytest.raises(ValueError):
            bad()
    assert [m.content for m in memory.messages] == ["first"]
    memory.add("assistant", "second")  # later turns still work
    memory.save(tmp_path / "mem.json")
    assert Memory.load(tmp_path / "mem.json").messages == memory.messages
    memory.close()
    if url:
        with Memory(store=url) as reopened:
            assert reopened.messages == memory.messages


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"max_policy_ms": True}, "max_policy_ms must be a positive number"),
        ({"max_policy_ms": math.nan}, "max_policy_ms must be a positive number"),
        ({"max_policy_ms": math.inf}, "max_policy_ms must be a positive number"),
        ({"system": f"You are {LONE}"}, "system holds a lone surrogate"),
        ({"session": f"user{LONE}"}, "session holds a lone surrogate"),
    ],
)
def test_memory_settings_that_could_not_be_saved_are_refused(options: dict[str, Any], text: str) -> None:
    with pytest.raises(ValueError, match=text):
        Memory(**options)


class _OddPolicy(Sliding):
    name = "odd"

    def state(self) -> dict[str, Any]:
        return {"ratio": math.nan}


def test_a_failed_save_names_the_part_that_is_not_json(tmp_path: Path) -> None:
    memory = Memory(_OddPolicy())
    memory.add("user", "hello")
    with pytest.raises(CheckpointError, match=r"the state of policy 'odd' \(what its state\(\) returns\) is not JSON"):
        memory.save(tmp_path / "mem.json")
    assert not (tmp_path / "mem.json").exists()


# -- the guarantee, fuzzed: whatever a Message accepts survives every way out ------------------------

_ANY_TEXT = st.text(st.characters(), max_size=12)  # lone surrogates included
_GOOD_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_GOOD_LEAVES = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | _GOOD_TEXT
_ANY_LEAVES = st.integers(-(2**70), 2**70) | st.floats() | _ANY_TEXT | st.binary(max_size=3)


def _json(leaves: st.SearchStrategy[Any], keys: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=3) | st.tuples(inner) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=8,
    )


_GOOD_JSON = _json(_GOOD_LEAVES, _GOOD_TEXT)
_ANY_JSON = _json(_GOOD_LEAVES | _ANY_LEAVES, _ANY_TEXT | st.integers(0, 3))


@st.composite
def _attempts(draw: st.DrawFn) -> dict[str, Any]:
    """Message fields, about half of them acceptable (lone surrogates, NaN, big ints, bytes... in the rest)."""
    text = st.one_of(_GOOD_TEXT, _GOOD_TEXT, _ANY_TEXT)
    ident = st.one_of(_GOOD_TEXT.filter(bool), _GOOD_TEXT.filter(bool), _ANY_TEXT)
    role = draw(st.sampled_from(["system", "user", "assistant", "tool"]))
    fields: dict[str, Any] = {"role": role, "content": draw(text)}
    if draw(st.booleans()):
        fields["meta"] = draw(st.dictionaries(text, st.one_of(_GOOD_JSON, _GOOD_JSON, _ANY_JSON), max_size=3))
    if draw(st.booleans()):
        fields["name"] = draw(text)
    if role == "assistant" and draw(st.booleans()):
        as_text = st.dictionaries(_GOOD_TEXT, st.one_of(_GOOD_JSON, _ANY_JSON)).map(
            lambda value: json.dumps(value, default=repr, ensure_ascii=False)
        )
        arguments = draw(st.one_of(as_text, as_text, _ANY_TEXT, st.none()))
        fields["tool_calls"] = [call(arguments, draw(ident), draw(ident))]
    if role == "tool":
        fields["tool_call_id"] = draw(ident)
    return fields


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(attempt=_attempts())
def test_whatever_a_message_accepts_can_be_saved_stored_and_sent(tmp_path: Path, attempt: dict[str, Any]) -> None:
    fields = dict(attempt)
    role, content = fields.pop("role"), fields.pop("content")
    try:
        message = Message(role, content, **fields)
    except (TypeError, ValueError):
        event("refused")
        return  # refused at the gate, with a plain error: fine
    event(f"accepted: meta {bool(message.meta)}, tool calls {bool(message.tool_calls)}")
    # sent: a request body is JSON, UTF-8 encoded, with no NaN
    json.dumps(message.to_dict(), allow_nan=False, ensure_ascii=False).encode("utf-8")
    # saved: a checkpoint round trip, the bytes save() writes (a tool result goes after its call)
    memory = Memory()
    if role == "tool":
        memory.add("assistant", "", tool_calls=[call(call_id=message.tool_call_id or "")])
    stamped = memory.extend([message])[0]
    assert checkpoint.restore(checkpoint.parse(checkpoint.dump(memory))).messages[-1] == stamped
    # stored: a SQLite round trip
    store = SQLiteStore(f"sqlite:///{tmp_path / 'chats.db'}?synchronous=off")
    try:
        store.delete("s")
        store.append("s", memory.messages)
        assert store.messages("s")[-1] == stamped
    finally:
        store.close()


class _BadReplies(EchoBackend):
    """Replies (after a first good one) with what no store takes, as a broken or hostile server might."""

    def __init__(self, text: str = "fine", tool_calls: Any = None) -> None:
        super().__init__()
        self.text, self.tool_calls = text, tool_calls

    def _completion(self, messages: Any, pieces: list[str]) -> Completion:
        if len(self.calls) == 1:  # the first reply is a good one
            return super()._completion(messages, pieces)
        return Completion(text=self.text, tool_calls=self.tool_calls, finish_reason="stop")


@pytest.mark.parametrize(
    "backend",
    [_BadReplies(f"half a pair {LONE}"), _BadReplies("\udcff"), _BadReplies("", ({"id": "c", "function": {}},))],
)
def test_a_reply_that_cannot_be_archived_fails_the_turn_as_a_backend_error(backend: EchoBackend) -> None:
    chat = Chat(backend, Memory())
    chat.send("hello")  # a good turn first
    before = chat.memory.messages
    with pytest.raises(BackendError, match="cannot be archived"):
        chat.send("and now?")
    with pytest.raises(BackendError, match="cannot be archived"):
        list(chat.stream("and now?"))
    assert chat.memory.messages == before


def test_subclasses_become_plain_values_and_stored_json_is_read_strictly() -> None:
    class Text(str):
        pass

    class Level(enum.IntEnum):
        HIGH = 3

    class Ratio(float):
        pass

    message = Message("user", Text("hi"), meta={"level": Level.HIGH, "ratio": Ratio(0.5), "pair": FrozenList([1])})
    assert type(message.content) is str and message.content == "hi"
    assert type(message.meta["level"]) is int and type(message.meta["ratio"]) is float
    frozen_list = message.meta["pair"]
    assert copy.copy(frozen_list) is frozen_list and copy.deepcopy(frozen_list) is frozen_list
    assert copy.copy(message.meta) is message.meta
    for bad in ('{"a": NaN}', '{"a": 1} trailing', "{"):
        with pytest.raises(ValueError):
            loads_frozen(bad)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)


def _all_frozen(value: Any) -> bool:
    if isinstance(value, dict):
        return type(value) is FrozenDict and all(_all_frozen(v) for v in value.values())
    if isinstance(value, list):
        return type(value) is FrozenList and all(_all_frozen(v) for v in value)
    return True


@given(_JSON)
def test_stored_json_decodes_to_the_same_value_frozen_all_the_way_down(value: Any) -> None:
    decoded = loads_frozen(json.dumps(value, ensure_ascii=False))
    assert decoded == value
    assert _all_frozen(decoded)
