"""Fuzzed checkpoints: whatever the bytes, loading raises CheckpointError or gives a working memory."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

import pytest
from _durable_helpers import fill
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from finite_memory import CheckpointError, Memory
from finite_memory import _checkpoint as checkpoint

FUZZ = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "good.json"
    fill(Memory(max_tokens=400, system="sys"), sessions=2).save(path)
    return path.read_bytes()


def _load_bytes(tmp_path: Path, data: bytes) -> Memory | None:
    """Load ``data`` from a file; only CheckpointError may escape, fast, and the file is not changed."""
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    start = time.perf_counter()
    try:
        memory: Memory | None = Memory.load(path)
    except CheckpointError:
        memory = None
    assert time.perf_counter() - start < 2.0
    assert path.read_bytes() == data
    if memory is not None:
        memory.context(query="anything")  # a memory that loaded must work
    return memory


@FUZZ
@given(cut=st.integers(min_value=0, max_value=10**9))
def test_truncations(tmp_path: Path, good: bytes, cut: int) -> None:
    cut %= len(good)
    assert _load_bytes(tmp_path, good[:cut]) is None


@FUZZ
@given(
    flips=st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=7)), min_size=1, max_size=4)
)
def test_bit_flips(tmp_path: Path, good: bytes, flips: list[tuple[int, int]]) -> None:
    data = bytearray(good)
    for position, bit in flips:
        data[position % len(data)] ^= 1 << bit
    if bytes(data) != good:
        assert _load_bytes(tmp_path, bytes(data)) is None


@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(tmp_path: Path, data: bytes) -> None:
    assert _load_bytes(tmp_path, data) is None


def _json_values() -> st.SearchStrategy[Any]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**40), max_value=10**40)
        | st.sampled_from([0, -1, 1, 2**63, -(2**63), 10**300, 1e308, -1e308, 5e-324, 0.5])
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(["user", "assistant", "tool", "system", "sliding", "approx", ""])
    )
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node[:6]):
            found += _paths(value, (*prefix, i))
    return found


@FUZZ
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    values=st.lists(_json_values(), min_size=1, max_size=3),
    drop=st.booleans(),
)
def test_wrong_types_with_a_valid_checksum(
    tmp_path: Path, good: bytes, seed: int, values: list[Any], drop: bool
) -> None:
    """Replace (or delete) random nodes, then fix the checksum so the structure checks are what is tested."""
    document = json.loads(good)
    rng = random.Random(seed)
    for value in values:
        paths = [p for p in _paths(document) if p and p[0] != "checksum"]
        path = rng.choice(paths)
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        if drop and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    document["checksum"] = checkpoint.checksum(document)
    _load_bytes(tmp_path, json.dumps(document).encode())


@pytest.mark.parametrize(
    "data",
    [
        b"[" * 200_000,
        b'{"a":' * 200_000,
        b"[" * 200_000 + b"]" * 200_000,
        b'{"format": "finite-memory/checkpoint", "version": ' + b"9" * 100_000 + b"}",
        b'{"format": "finite-memory/checkpoint", "version": 1e999999}',
        b'{"format": "finite-memory/checkpoint", "version": -99999999999999999999999999999}',
        b'{"format": "finite-memory/checkpoint", "version": 1, "checksum": "x", "memory": '
        + b"[" * 50_000
        + b"]" * 50_000
        + b"}",
        b"\xef\xbb\xbf{}",
        b"\x00" * 1000,
    ],
)
def test_extremes(tmp_path: Path, data: bytes) -> None:
    assert _load_bytes(tmp_path, data) is None
