from __future__ import annotations

import subprocess
import sys

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
    assert err.startswith("finite-memory demo: error: unknown policy 'no-such-policy'")
    assert "Traceback" not in err


def test_plugins_and_demo_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    assert "sliding" in capsys.readouterr().out
    assert main(["demo", "--sessions", "2", "--every", "2", "--budget", "128"]) == 0
    out = capsys.readouterr().out
    assert "budget=128" in out and "questions have all their evidence" in out
