"""The README's Install lines, run as written from the clone, each flavour in a fresh virtual environment.

Slow (about two minutes: real installs, torch included), so it runs in ``nox -s tests_install``
(``FINITE_MEMORY_INSTALL_TESTS=1``), not in ``nox -s tests``. Packages come from the
machine's pip configuration, as they would for a reader; the torch build is installed
first, as the README tells readers to (here the CPU one).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from _readme import ROOT, shell_lines

pytestmark = pytest.mark.skipif(
    os.environ.get("FINITE_MEMORY_INSTALL_TESTS") != "1", reason="fresh-venv installs run in `nox -s tests_install`"
)
TORCH = "torch==2.13.0"
THIRD_PARTY = (
    "import importlib.util as u; print(sorted(m for m in ('httpx', 'torch', 'transformers') if u.find_spec(m)))"
)


def install_line(target: str) -> str:
    """The README's Install line for ``target`` (``"finite-memory-core[api]"``...), exactly as written."""
    for _, line in shell_lines("Install"):
        if re.search(rf"\./packages/{re.escape(target)}(\"|\s)", line):
            return line
    raise AssertionError(f"the README's Install section has no line for {target}")


class Venv:
    """A fresh virtual environment; commands run in a shell with it activated, from the clone's root."""

    def __init__(self, folder: Path) -> None:
        venv.EnvBuilder(with_pip=True, clear=True).create(folder)
        self.folder = folder
        bin_dir = folder / ("Scripts" if sys.platform == "win32" else "bin")
        self.python = bin_dir / "python"
        path = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"
        self.env = {**os.environ, "VIRTUAL_ENV": str(folder), "PATH": path, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        self.env.pop("PYTHONPATH", None)

    def shell(self, line: str, timeout: float = 600) -> str:
        done = subprocess.run(
            ["bash", "-c", line], cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done.stdout


def test_core_alone_then_the_hint_it_prints(tmp_path: Path) -> None:
    env = Venv(tmp_path / "core")
    env.shell(install_line("finite-memory-core"))
    assert env.shell(f"python -c {shlex.quote(THIRD_PARTY)}").strip() == "[]"
    listing = env.shell("finite-memory plugins")
    hint = re.search(r"openai +not installed; it comes with finite-memory-api: (pip install .+)", listing)
    assert hint, listing
    assert hint.group(1) == f"pip install {ROOT / 'packages' / 'finite-memory-api'}", "a plain install from the clone"
    error = subprocess.run(
        [str(env.python), "-c", "import finite_memory; finite_memory.load_backend('openai:m')"],
        capture_output=True,
        text=True,
        env=env.env,
    ).stderr
    assert hint.group(1) in error, "BackendNotInstalled names the same command"
    env.shell(hint.group(1))  # the hint works as printed
    assert "finite-memory-api 0.1.0" in env.shell("finite-memory plugins")
    assert env.shell(f"python -c {shlex.quote(THIRD_PARTY)}").strip() == "['httpx']"


def test_core_with_the_api_extra(tmp_path: Path) -> None:
    env = Venv(tmp_path / "api")
    env.shell(install_line("finite-memory-core[api]"))
    assert env.shell(f"python -c {shlex.quote(THIRD_PARTY)}").strip() == "['httpx']", "never torch"
    listing = env.shell("finite-memory plugins")
    assert re.search(r"openai +finite_memory_api\.openai:OpenAIBackend +\(finite-memory-api 0\.1\.0\)", listing)
    assert "hf               not installed; it comes with finite-memory-hf" in listing


def test_everything_then_every_other_line(tmp_path: Path) -> None:
    env = Venv(tmp_path / "all")
    env.shell(f"pip install {TORCH}")  # the build the README says to install first (the CPU one, here)
    everything = install_line("finite-memory-all")
    env.shell(everything)
    for _, line in shell_lines("Install"):  # [hf], [minilm], and any line added later
        if line != everything:
            env.shell(line)
    assert "+cpu" in env.shell("python -c 'import torch; print(torch.__version__)'"), "torch kept, not replaced"
    listing = env.shell("finite-memory plugins")
    for name in ("openai", "anthropic", "hf", "minilm", "attention", "model"):
        assert re.search(rf"^  {name} +finite_memory_(api|hf)\.", listing, flags=re.M), (name, listing)
    assert "not installed" not in listing
    probe = (
        "from finite_memory import Memory; m = Memory(policy='semantic', embedder='minilm', max_tokens=256); "
        "m.add('user', 'I moved to Lisbon in May.'); m.add('user', 'The cat is asleep.'); "
        "print(m.context(query='Which city do I live in?').included)"
    )
    assert "0" in env.shell(f"HF_HUB_OFFLINE=1 python -c {shlex.quote(probe)}")


def test_a_release_build_keeps_the_plain_pins(tmp_path: Path) -> None:
    env = Venv(tmp_path / "build")
    env.shell("pip install hatchling")  # once, instead of an isolated build environment per wheel
    for release, expected in (
        ("", r"finite-memory-api(\[serve\])? @ file:"),  # core's [api] extra; all takes the proxy too
        ("FINITE_MEMORY_RELEASE=1 ", r"finite-memory-api(\[serve\])?==0\.1\.0"),
    ):
        out = tmp_path / ("release" if release else "clone")
        packages = "./packages/finite-memory-core ./packages/finite-memory-all"
        env.shell(f"{release}pip wheel --no-deps --no-build-isolation -w {out} {packages}")
        for wheel in out.glob("*.whl"):
            with zipfile.ZipFile(wheel) as archive:
                metadata = archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))).decode()
            assert re.search(expected, metadata), (wheel.name, metadata)
