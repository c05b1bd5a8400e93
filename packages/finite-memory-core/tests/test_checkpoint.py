"""Checkpoints: round trips, atomic writes, versioning and migrations, and bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _durable_helpers import fill, questions, same_context

import finite_memory
from finite_memory import ApproxTokenizer, CheckpointError, Memory, Message
from finite_memory import _checkpoint as checkpoint
from finite_memory._registry import plugins
from finite_memory.policies import Policy, Selection

POLICIES = sorted(plugins("policies"))


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    tokenizer = ApproxTokenizer(per_message=5, per_prompt=2)
    tokenizer.calibrate([Message("user", "x" * 400)], 150)
    mem = fill(
        Memory(
            "sliding",
            600,
            100,
            "You are kind.",
            tokenizer=tokenizer,
            max_policy_ms=250.0,
            sink_turns=1,
            session="user-42",
        )
    )
    path = tmp_path / "mem.json"
    mem.save(path)
    back = Memory.load(path)
    assert back.messages == mem.messages
    assert [m.id for m in back.messages] == list(range(len(mem)))
    assert [(t.number, t.ids) for t in back.turns] == [(t.number, t.ids) for t in mem.turns]
    assert any(m.tool_calls for m in back.messages) and any(m.role == "tool" for m in back.messages)
    assert (back.system, back.max_tokens, back.reserve_output, back.max_policy_ms, back.session) == (
        "You are kind.",
        600,
        100,
        250.0,
        "user-42",
    )
    assert back.policy.name == "sliding"
    assert back.policy.options() == {"sink_turns": 1, "recent_turns": 3, "low_water": 0.8}
    assert isinstance(back.tokenizer, ApproxTokenizer)
    assert back.tokenizer.state() == tokenizer.state()
    assert (back.tokenizer.per_message, back.tokenizer.per_prompt) == (5, 2)
    for q in questions():
        same_context(mem, back, q)
    # the restored memory goes on where the saved one stopped
    new = back.add("user", "And now?")
    assert new.id == len(mem) and new.turn == mem.turns[-1].number + 1


def test_file_layout_and_checksum(tmp_path: Path) -> None:
    path = tmp_path / "mem.json"
    fill(Memory(max_tokens=400)).save(path)
    document = json.loads(path.read_text())
    assert document["format"] == "finite-memory/checkpoint"
    assert document["version"] == checkpoint.VERSION == 1
    body = {k: v for k, v in document.items() if k != "checksum"}
    import hashlib

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert document["checksum"] == "sha256:" + hashlib.sha256(canonical).hexdigest()
    package = Path(checkpoint.__file__).parent
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert "import pickle" not in text and "from pickle" not in text and "marshal" not in text, source


@pytest.mark.parametrize("name", POLICIES)
def test_every_policy_builds_the_same_context_after_reload(tmp_path: Path, name: str) -> None:
    mem = fill(Memory(name, max_tokens=500, reserve_output=100, system="Be brief."), sessions=6)
    for q in questions(sessions=6)[:3]:
        mem.context(query=q)  # let stateful policies (summaries) evolve before saving
    path = tmp_path / f"{name}.json"
    mem.save(path)
    back = Memory.load(path)
    assert back.policy.name == name and back.policy.options() == mem.policy.options()
    assert back.policy.state() == mem.policy.state()
    for q in questions(sessions=6):
        same_context(mem, back, q)


def test_save_replaces_atomically_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "mem.json"
    mem = fill(Memory(max_tokens=400))
    mem.save(path)
    first = path.read_bytes()
    mem.add("user", "one more")
    mem.save(path)
    assert path.read_bytes() != first
    assert len(Memory.load(path)) == len(mem)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem.json"]


@pytest.mark.parametrize("failure", ["unserialisable", "disk"])
def test_a_failed_save_keeps_the_previous_file(tmp_path: Path, failure: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "mem.json"
    mem = fill(Memory(max_tokens=400))
    mem.save(path)
    before = path.read_bytes()
    if failure == "unserialisable":
        mem.add("user", "x")
        monkeypatch.setattr(type(mem.policy), "state", lambda self: {"bad": object()})
        with pytest.raises(CheckpointError, match="not JSON"):
            mem.save(path)
    else:
        real_fsync = os.fsync

        def full_disk(fd: int) -> None:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "fsync", full_disk)
        with pytest.raises(OSError, match="No space"):
            mem.save(path)
        monkeypatch.setattr(os, "fsync", real_fsync)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mem.json"]


def _valid(tmp_path: Path) -> dict:
    path = tmp_path / "ok.json"
    fill(Memory(max_tokens=400), sessions=2).save(path)
    return json.loads(path.read_text())


def _write(path: Path, document: dict, *, fix_checksum: bool = True) -> None:
    if fix_checksum:
        document["checksum"] = checkpoint.checksum(document)
    path.write_text(json.dumps(document))


def _bad_files(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    good = _valid(tmp_path)
    raw = json.dumps(good).encode()
    cases: dict[str, tuple[bytes, str]] = {
        "empty": (b"", "empty file"),
        "blank": (b"  \n", "empty file"),
        "truncated": (raw[: len(raw) // 2], "truncated"),
        "not json": (b"hello, world", "not JSON"),
        "binary": (bytes(range(256)), "not UTF-8"),
        "array": (b"[1, 2]", "top level is a JSON list"),
        "other format": (json.dumps({**good, "format": "x"}).encode(), "not a finite-memory checkpoint"),
    }
    edited = json.loads(raw)
    edited["memory"]["messages"][0]["content"] = "edited by hand"
    cases["checksum mismatch"] = (json.dumps(edited).encode(), "checksum mismatch")
    no_sum = dict(good)
    del no_sum["checksum"]
    cases["no checksum"] = (json.dumps(no_sum).encode(), "missing field 'checksum'")

    def fixed(mutate: object) -> bytes:
        doc = json.loads(raw)
        mutate(doc)  # type: ignore[operator]
        doc["checksum"] = checkpoint.checksum(doc)
        return json.dumps(doc).encode()

    cases["newer version"] = (fixed(lambda d: d.update(version=7)), "version 7 is newer")
    cases["unknown version"] = (fixed(lambda d: d.update(version=-3)), "unknown checkpoint version -3")
    cases["version type"] = (fixed(lambda d: d.update(version="1")), "version must be an int")
    cases["missing memory"] = (fixed(lambda d: d.pop("memory")), "missing field 'memory'")
    cases["missing field"] = (fixed(lambda d: d["memory"].pop("max_tokens")), "missing field 'memory.max_tokens'")
    cases["wrong type"] = (fixed(lambda d: d["memory"].update(messages={})), "memory.messages must be list")
    cases["bad message"] = (fixed(lambda d: d["memory"]["messages"][0].update(role="robot")), "bad message")
    cases["ids out of order"] = (fixed(lambda d: d["memory"]["messages"].reverse()), "bad message")
    cases["unknown policy"] = (fixed(lambda d: d["memory"]["policy"].update(name="nope")), "cannot rebuild policy")
    cases["bad option"] = (fixed(lambda d: d["memory"]["policy"]["options"].update(sink_turns=-1)), "policy")
    cases["bad budget"] = (fixed(lambda d: d["memory"].update(reserve_output=10**6)), "bad memory settings")
    cases["bad calibration"] = (fixed(lambda d: d["memory"]["tokenizer"]["state"].update(scale=1e9)), "calibration")
    cases["huge per_prompt"] = (fixed(lambda d: d["memory"]["tokenizer"].update(per_prompt=10**9)), "calibration")
    cases["huge margin"] = (fixed(lambda d: d["memory"]["tokenizer"]["state"].update(margin=1e6)), "calibration")
    cases["nan"] = (raw.replace(b'"max_tokens": 400', b'"max_tokens": NaN'), "NaN is not allowed")
    cases["infinity"] = (raw.replace(b'"max_tokens": 400', b'"max_tokens": 1e999'), "out of range")
    cases["huge int"] = (raw.replace(b'"max_tokens": 400', b'"max_tokens": ' + b"9" * 5000), "number")
    cases["deep nesting"] = (b"[" * 100_000 + b"]" * 100_000, "nested too deeply")
    return cases


def test_every_kind_of_bad_file_is_named_and_left_untouched(tmp_path: Path) -> None:
    for label, (data, expected) in _bad_files(tmp_path).items():
        path = tmp_path / "bad.json"
        path.write_bytes(data)
        with pytest.raises(CheckpointError) as caught:
            Memory.load(path)
        assert expected in str(caught.value), (label, str(caught.value))
        assert path.read_bytes() == data, label
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        Memory.load(tmp_path / "missing.json")


def test_migration_from_an_older_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A synthetic version 0 that kept the memory under "archive" and messages as [role, content] pairs."""
    good = _valid(tmp_path)
    body = good["memory"]
    old_body = {
        **body,
        "messages": [
            [m["role"], m["content"], m["id"], m["turn"]]
            for m in body["messages"]
            if m["role"] in ("user", "assistant") and m["content"]
        ],
    }
    old = {"format": checkpoint.FORMAT, "version": 0, "archive": old_body}
    path = tmp_path / "v0.json"
    _write(path, old)
    with pytest.raises(CheckpointError, match="unknown checkpoint version 0"):
        Memory.load(path)

    def v0_to_v1(doc: dict) -> dict:
        body = doc.pop("archive")
        body["messages"] = [{"role": r, "content": c, "id": i, "turn": t} for r, c, i, t in body["messages"]]
        return {**doc, "memory": body}

    monkeypatch.setitem(checkpoint.MIGRATIONS, 0, v0_to_v1)
    mem = Memory.load(path)
    assert [m.content for m in mem.messages] == [c for _, c, _, _ in old_body["messages"]]
    assert mem.max_tokens == 400
    migrated = tmp_path / "v1.json"
    mem.save(migrated)
    assert json.loads(migrated.read_text())["version"] == 1
    assert Memory.load(migrated).messages == mem.messages


def test_load_takes_a_tokenizer_and_skips_an_exact_one(tmp_path: Path) -> None:
    class Words:
        def count(self, text: str) -> int:
            return len(text.split())

        def count_messages(self, messages: list[Message]) -> int:
            return 3 + sum(4 + len(m.content.split()) for m in messages)

    mem = fill(Memory(max_tokens=400, tokenizer=Words()))
    path = tmp_path / "m.json"
    mem.save(path)
    assert json.loads(path.read_text())["memory"]["tokenizer"] == {"kind": f"{__name__}.{Words.__qualname__}"}
    assert isinstance(Memory.load(path).tokenizer, ApproxTokenizer)
    again = Memory.load(path, tokenizer=Words())
    same_context(mem, again, "Where do I live?")


def test_policy_state_comes_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import dataclass, field

    @dataclass
    class Counting(Policy):
        name = "counting"
        seen: list = field(default_factory=list, init=False)

        def select(self, view):  # type: ignore[no-untyped-def]
            self.seen.append(len(view.turns))
            return Selection(turns=[])

        def state(self) -> dict:
            return {"seen": list(self.seen)}

        def load_state(self, state: dict) -> None:
            self.seen = list(state["seen"])

    import finite_memory._registry as registry

    real = registry.load_plugin
    monkeypatch.setattr(
        registry, "load_plugin", lambda kind, name: Counting if name == "counting" else real(kind, name)
    )
    mem = fill(Memory(Counting(), max_tokens=400))
    mem.context()
    mem.context()
    mem.save(tmp_path / "c.json")
    back = Memory.load(tmp_path / "c.json")
    assert isinstance(back.policy, Counting) and back.policy.seen == mem.policy.seen and len(back.policy.seen) == 2


def test_public_names() -> None:
    assert finite_memory.CheckpointError is CheckpointError
    assert issubclass(CheckpointError, finite_memory.FiniteMemoryError)


def test_a_reformatted_file_with_the_same_content_still_loads(tmp_path: Path) -> None:
    """The checksum covers the canonical form, not the bytes: pretty-printing keeps a file valid."""
    path = tmp_path / "mem.json"
    mem = fill(Memory(max_tokens=400))
    mem.save(path)
    assert path.read_bytes().startswith(b'{"checksum":"sha256:')
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(path.read_text()), indent=2, ensure_ascii=True))
    assert Memory.load(pretty).messages == mem.messages
