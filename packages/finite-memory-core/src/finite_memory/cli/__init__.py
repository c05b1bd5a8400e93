"""The ``finite-memory`` command. Each subcommand lives in its own module of this package."""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Sequence
from importlib import import_module

from .._errors import BackendNotInstalled, FiniteMemoryError
from .._registry import ELSEWHERE, install_hint
from .._registry import plugins as installed_plugins

#: Subcommand modules; each has ``add_parser(subparsers)`` that sets ``func`` on its parser.
#: Other distributions add commands through the ``finite_memory.commands`` entry-point group,
#: whose entries name such an ``add_parser`` (``serve = "finite_memory_api.serve.cli:add_parser"``).
COMMANDS = ("plugins", "demo", "sessions", "chat", "eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="finite-memory", description="Keep LLM conversations inside a token budget.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        import_module(f".{name}", __name__).add_parser(sub)
    for name, entry in sorted(installed_plugins("commands").items()):
        if name in sub.choices:
            continue  # a plug-in never replaces a built-in command
        try:
            add_parser = entry.load()
        except ImportError as exc:  # a broken plug-in must not take the whole command line down
            print(f"finite-memory: command {name!r} from {entry.value} cannot be loaded: {exc}", file=sys.stderr)
            continue
        add_parser(sub)
    for name in ELSEWHERE["commands"]:
        if name not in sub.choices:  # `finite-memory serve` without finite-memory-api: say how to get it
            stub = sub.add_parser(
                name, help=f"(not installed: {install_hint('commands', name)})", add_help=False, prefix_chars="\0"
            )
            stub.add_argument("rest", nargs="*")  # whatever was typed: the hint is the answer
            stub.set_defaults(func=functools.partial(_not_installed, name))
    return parser


def _not_installed(name: str, args: argparse.Namespace) -> int:
    raise BackendNotInstalled(f"command {name!r} is not installed; {install_hint('commands', name)}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (errors print one line, no traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (FiniteMemoryError, ValueError, TypeError, OSError) as exc:
        print(f"finite-memory {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
