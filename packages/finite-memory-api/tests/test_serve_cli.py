"""The ``finite-memory serve`` command: registered through an entry point, cheap to list, clear when misused."""

from __future__ import annotations

import subprocess
import sys

import pytest

from finite_memory.cli import build_parser, main
from finite_memory_api.serve._cli import redacted_url


def test_the_core_cli_finds_the_serve_command() -> None:
    args = build_parser().parse_args(["serve", "--backend", "openai:m", "--policy", "sliding", "--max-tokens", "512"])
    assert args.command == "serve" and args.max_tokens == 512 and args.host == "127.0.0.1" and args.port == 8080


def test_plugins_lists_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "commands:" in out and "finite_memory_api.serve._cli:add_parser" in out


def test_building_the_command_line_loads_no_web_framework() -> None:
    code = (
        "import sys\n"
        "from finite_memory.cli import build_parser\n"
        "build_parser().parse_args(['serve', '--backend', 'openai:m', '--policy', 'sliding', '--max-tokens', '512'])\n"
        "print(sorted(m for m in ('httpx', 'starlette', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


def test_store_passwords_never_print() -> None:
    assert redacted_url("postgresql://app:s3cret@db:5432/chats") == "postgresql://app:***@db:5432/chats"
    assert redacted_url("sqlite:///chats.db") == "sqlite:///chats.db"
