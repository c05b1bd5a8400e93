"""One contract suite for every store: in-process, SQLite and a real PostgreSQL server started here."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from finite_memory.stores import InMemoryStore, Store
from finite_memory.stores.contract import CHECKS
from finite_memory.stores.sqlite import SQLiteStore

_schemas = itertools.count()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Store]]:
    """Opens stores on one namespace that is empty for each test: a dict, a file, a schema."""
    opened: list[Store] = []
    shared: dict[Any, InMemoryStore] = {}
    kind = request.param
    if kind == "postgres":
        from finite_memory.stores.postgres import PostgresStore

        url = request.getfixturevalue("postgres").url + f"?schema=contract_{next(_schemas)}"

    def make(**options: Any) -> Store:
        store: Store
        if kind == "memory":  # one process: "another store object" is the same dict
            return shared.setdefault(tuple(sorted(options.items())), InMemoryStore(**options))
        if kind == "sqlite":
            store = SQLiteStore(f"sqlite:///{tmp_path}/contract.db?synchronous=normal", **options)
        else:
            store = PostgresStore(url, **options)
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__.removeprefix("check_"))
def test_store_contract(check: Callable[[Callable[..., Store]], None], open_store: Callable[..., Store]) -> None:
    check(open_store)
