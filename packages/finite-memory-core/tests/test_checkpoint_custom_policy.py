"""A checkpoint of a policy that is not registered by name loads through ``Memory.load(path, policy=...)``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _durable_helpers import fill

from finite_memory import CheckpointError, Memory
from finite_memory.policies import PolicyInput, Selection, Sliding


@dataclass
class Newest(Sliding):
    """A policy of the caller's own (not an entry point), with an option and a state."""

    name = "newest-of-my-own"
    keep: int = 2
    seen: list[int] = field(default_factory=list, init=False)

    def select(self, view: PolicyInput) -> Selection:
        self.seen.append(len(view.turns))
        return Selection(turns=list(view.turns)[-self.keep :])

    def state(self) -> dict[str, Any]:
        return {"seen": list(self.seen)}

    def load_state(self, state: dict[str, Any]) -> None:
        self.seen = list(state["seen"])


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Memory, Path]:
    memory = fill(Memory(Newest(keep=3), max_tokens=400))
    memory.context(query="where")
    path = tmp_path / "custom.json"
    memory.save(path)
    return memory, path


def test_without_policy_the_error_says_how_to_load_it(saved: tuple[Memory, Path]) -> None:
    _, path = saved
    with pytest.raises(CheckpointError, match=r"newest-of-my-own.*Memory.load\(path, policy=...\)"):
        Memory.load(path)


def test_the_policy_class_is_rebuilt_with_the_saved_options_and_state(saved: tuple[Memory, Path]) -> None:
    memory, path = saved
    back = Memory.load(path, policy=Newest)
    assert isinstance(back.policy, Newest) and back.policy.keep == 3 and back.policy.seen == [len(memory.turns) - 1]
    assert back.messages == memory.messages
    assert back.context(query="where").messages == memory.context(query="where").messages


def test_an_instance_is_used_as_given(saved: tuple[Memory, Path]) -> None:
    memory, path = saved
    mine = Newest(keep=1)
    back = Memory.load(path, policy=mine)
    assert back.policy is mine and mine.seen == [len(memory.turns) - 1]  # same name: the saved state comes back


def test_another_policy_starts_afresh_on_the_archive(saved: tuple[Memory, Path]) -> None:
    memory, path = saved
    back = Memory.load(path, policy="hybrid")
    assert back.policy.name == "hybrid" and back.messages == memory.messages
    assert back.context(query="where").tokens <= back.budget


def test_a_policy_argument_of_the_wrong_kind_is_refused(saved: tuple[Memory, Path]) -> None:
    _, path = saved
    with pytest.raises(TypeError, match="policy must be a policy name, a Policy class or a Policy instance"):
        Memory.load(path, policy=dict)  # type: ignore[arg-type]
