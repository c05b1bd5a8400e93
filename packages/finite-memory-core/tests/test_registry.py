from __future__ import annotations

import pytest

from finite_memory import BackendNotInstalled, UnknownPluginError, _registry, load_backend, load_policy, plugins
from finite_memory.policies import Sliding
from finite_memory.testing import EchoBackend


def test_load_backend_resolves_scheme_through_entry_points() -> None:
    backend = load_backend("echo:my-model", tokens_per_word=2.0)
    assert isinstance(backend, EchoBackend)
    assert backend.name == "echo:my-model" and backend.tokens_per_word == 2.0
    assert "echo" in plugins("backends")


def test_missing_known_backend_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "plugins", lambda kind: {})
    with pytest.raises(BackendNotInstalled, match=r"pip install 'finite-memory-core\[api\]'"):
        load_backend("openai:gpt-4o-mini")
    with pytest.raises(BackendNotInstalled, match=r"pip install 'finite-memory-core\[hf\]'"):
        load_backend("hf:Qwen/Qwen2.5-0.5B-Instruct")


def test_broken_plugin_import_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        value = "missing_module:factory"

        def load(self) -> None:
            raise ModuleNotFoundError("No module named 'httpx'")

    monkeypatch.setattr(_registry, "plugins", lambda kind: {"openai": Broken()})
    with pytest.raises(BackendNotInstalled, match=r"cannot be imported \(No module named 'httpx'\); install it with"):
        load_backend("openai:m")


@pytest.mark.parametrize(
    ("spec", "error", "text"),
    [
        ("nope:model", UnknownPluginError, "unknown backend 'nope'; installed backends: .*echo"),
        ("echo", ValueError, "'scheme:model'"),
        (":model", ValueError, "'scheme:model'"),
        ("echo:", ValueError, "'scheme:model'"),
        (42, TypeError, "'scheme:model' string"),
    ],
)
def test_bad_backend_specs(spec: object, error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        load_backend(spec)  # type: ignore[arg-type]


def test_policies_and_kinds() -> None:
    assert isinstance(load_policy("sliding", sink_turns=2), Sliding)
    with pytest.raises(ValueError, match="unknown plugin kind 'widgets'"):
        plugins("widgets")
    with pytest.raises(TypeError, match="a policy name must be a non-empty string"):
        _registry.load_plugin("policies", "")
