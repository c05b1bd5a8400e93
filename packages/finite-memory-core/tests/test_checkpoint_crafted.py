"""Crafted checkpoints (valid checksum, hostile content): refused at load with a CheckpointError naming the field.

A file that loads must give a memory that works: every context within its budget, no
error deep inside a later turn.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finite_memory import CheckpointError, Memory
from finite_memory import _checkpoint as checkpoint

INF = "@inf@"  # a placeholder written as the number 1e999, which JSON readers turn into infinity


def saved(policy: str, **options: Any) -> dict[str, Any]:
    memory = Memory(policy, max_tokens=600, reserve_output=100, system="Be brief.", **options)
    for i in range(30):
        memory.add("user", f"Question {i}: what about the trams in Lisbon, stop {i}?", meta={"date_time": f"day {i}"})
        memory.add("assistant", f"Answer {i}: the 28 tram stops at {i}.")
        memory.context(query="Lisbon trams")  # summaries and low-water marks move
    return dict(json.loads(checkpoint.dump(memory)))


def crafted(document: dict[str, Any]) -> bytes:
    """The bytes of ``document`` with a checksum that matches them, as an attacker would write it."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":")).replace(json.dumps(INF), "1e999")
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return b'{"checksum":' + json.dumps(digest).encode() + b"," + text.encode()[1:]


def setting(*path: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(memory: dict[str, Any]) -> None:
        node = memory
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def dropping(*path: Any) -> Callable[[dict[str, Any]], None]:
    def change(memory: dict[str, Any]) -> None:
        node = memory
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


CASES: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "huge per_prompt": ("sliding", setting("tokenizer", "per_prompt", value=10**6), "leave no room"),
    "huge per_message": ("sliding", setting("tokenizer", "per_message", value=10**6), "leave no room"),
    "per_prompt as float": ("sliding", setting("tokenizer", "per_prompt", value=3.5), "per_prompt must be an int"),
    "per_message as bool": ("sliding", setting("tokenizer", "per_message", value=True), "per_message must be an int"),
    "per_prompt missing": ("sliding", dropping("tokenizer", "per_prompt"), "per_prompt must be an int"),
    "scale out of range": ("sliding", setting("tokenizer", "state", "scale", value=1e9), "scale must be a number"),
    "scale infinite": ("sliding", setting("tokenizer", "state", "scale", value=INF), "scale must be a number"),
    "seen_raw negative": ("sliding", setting("tokenizer", "state", "seen_raw", value=-1), "seen_raw must be"),
    "calibration field infinite": ("sliding", setting("tokenizer", "state", "bias", value=INF), r"state\['bias'\]"),
    "calibration field with a surrogate": (
        "sliding",
        setting("tokenizer", "state", "note", value="\udfff"),
        r"state\['note'\]",
    ),
    "tokenizer field unknown": ("sliding", setting("tokenizer", "vocab", value=[]), "memory.tokenizer.vocab"),
    "exact tokenizer with fields": (
        "sliding",
        lambda m: m.update(tokenizer={"kind": "x.Exact", "per_prompt": 10**6}),
        "memory.tokenizer.per_prompt",
    ),
    "max_policy_ms infinite": ("sliding", setting("max_policy_ms", value=INF), "max_policy_ms must be a positive"),
    "memory field unknown": ("sliding", setting("owner", value="me"), "unknown field 'memory.owner'"),
    "policy field unknown": ("sliding", setting("policy", "code", value="x"), "memory.policy.code"),
    "empty policy name": ("sliding", setting("policy", "name", value=""), "policy.name must be a non-empty str"),
    "surrogate in the system prompt": ("sliding", setting("system", value="\ud800"), "system holds a lone surrogate"),
    "surrogate in a message": (
        "sliding",
        setting("messages", 3, "content", value="a\ud83db"),
        r"messages\[3\].*lone surrogate",
    ),
    "NaN-like meta": ("sliding", setting("messages", 0, "meta", value={"x": INF}), r"messages\[0\].*inf"),
    "arguments not JSON": (
        "sliding",
        setting("messages", 1, "tool_calls", value=[{"id": "c", "function": {"name": "f", "arguments": "{"}}]),
        r"messages\[1\].*not JSON text",
    ),
    "id beyond 64 bits": ("sliding", setting("messages", -1, "id", value=2**64), "beyond 64 bits"),
    "turn beyond 64 bits": ("sliding", setting("messages", -1, "turn", value=2**64), "beyond 64 bits"),
    "surrogate in a summary": (
        "rolling_summary",
        setting("policy", "state", "text", value="a summary \udcff"),
        r"policy.state\['text'\] holds a lone surrogate",
    ),
    "surrogate in a policy option": (
        "hybrid",
        setting("policy", "options", "pin_key", value="\ud800"),
        "policy.options",
    ),
    "NaN-like policy state": ("sliding", setting("policy", "state", "start", value=INF), r"policy.state\['start'\]"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_crafted_checkpoint_is_refused_naming_the_field(tmp_path: Path, case: str) -> None:
    policy, change, expected = CASES[case]
    document = saved(policy)
    change(document["memory"])
    path = tmp_path / "crafted.json"
    data = crafted(document)
    path.write_bytes(data)
    with pytest.raises(CheckpointError, match=expected):
        Memory.load(path)
    assert path.read_bytes() == data


def test_the_crafting_helper_writes_what_load_accepts(tmp_path: Path) -> None:
    path = tmp_path / "same.json"
    path.write_bytes(crafted(saved("hybrid")))
    assert Memory.load(path).context(query="trams").tokens <= 500


@pytest.fixture(scope="module", params=["sliding", "rolling_summary", "hybrid"])
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    options = {"low_water": 0.3} if request.param == "sliding" else {}
    return saved(request.param, **options)


_NUMBERS = st.sampled_from([0, 1, -1, 3, 2**31, 2**63 - 1, 2**63, 10**30, 0.5, -0.0, 1e308, INF, True, None, "3"])
_TEXT = st.text(st.characters(), max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    where=st.sampled_from(
        [
            ("tokenizer", "per_prompt"),
            ("tokenizer", "per_message"),
            ("tokenizer", "state", "scale"),
            ("tokenizer", "state", "seen_tokens"),
            ("max_tokens",),
            ("reserve_output",),
            ("max_policy_ms",),
            ("policy", "state", "text"),
            ("policy", "state", "covered"),
            ("policy", "state", "start"),
            ("messages", 0, "turn"),
            ("messages", -1, "id"),
            ("messages", 2, "content"),
        ]
    ),
    value=_NUMBERS | _TEXT,
)
def test_whatever_a_crafted_field_holds_a_loaded_memory_keeps_its_budget(
    tmp_path: Path, document: dict[str, Any], where: tuple[Any, ...], value: Any
) -> None:
    edited = json.loads(json.dumps(document))
    setting(*where, value=value)(edited["memory"])
    path = tmp_path / "crafted.json"
    path.write_bytes(crafted(edited))
    try:
        memory = Memory.load(path)
    except CheckpointError:
        return
    for query in ("Lisbon trams", "", None):
        assert memory.context(query=query).tokens <= memory.budget
    memory.add("user", "And the tram at stop 7?")
    memory.add("assistant", "It comes every 10 minutes.")
    assert memory.context(query="stop 7").tokens <= memory.budget
