"""Shared fixtures for core tests."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from finite_memory import Memory

if TYPE_CHECKING:
    from finite_memory.stores.pgtest import TemporaryPostgres


@pytest.fixture
def memory() -> Memory:
    return Memory(max_tokens=256, reserve_output=32, system="You are a helpful assistant.")


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryPostgres]:
    """A real PostgreSQL server started for this test session (``initdb``/``pg_ctl``, 127.0.0.1).

    Without psycopg or the server binaries the tests that need it skip, unless
    ``FINITE_MEMORY_REQUIRE_POSTGRES=1`` (set by ``nox -s tests``) makes that a failure.
    """
    from finite_memory.stores.pgtest import TemporaryPostgres, find_binaries

    problem = None
    if importlib.util.find_spec("psycopg") is None:
        problem = "psycopg is not installed: pip install 'finite-memory-core[postgres]'"
    else:
        try:
            find_binaries()
        except FileNotFoundError as exc:
            problem = str(exc)
    if problem is not None:
        if os.environ.get("FINITE_MEMORY_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"FINITE_MEMORY_REQUIRE_POSTGRES=1 but {problem}")
        pytest.skip(problem)
    with TemporaryPostgres() as server:
        yield server
