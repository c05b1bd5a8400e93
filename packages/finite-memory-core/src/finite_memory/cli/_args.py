"""Flags shared by the subcommands: checked integers, the default store, output files.

Errors name the flag the user typed (``argument --budget: ...``), never a parameter
of the library underneath.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .._errors import FiniteMemoryError


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer no smaller than ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {value}")
        return value

    return parse


def non_empty(text: str) -> str:
    """An argparse ``type``: a string with something in it."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


@contextlib.contextmanager
def flag(name: str | None = None, **parameters: str) -> Iterator[None]:
    """Errors raised inside name the flags the user typed.

    ``name``: the flag whose value the code inside uses (its errors start ``argument NAME:``);
    ``parameters``: library parameter names to write as flags (``max_tokens="--budget"``).
    """
    try:
        yield
    except (FiniteMemoryError, ValueError, TypeError) as exc:
        message = str(exc)
        for parameter, option in parameters.items():
            message = re.sub(rf"\b{parameter}\b", option, message)
        raise ValueError(f"argument {name}: {message}" if name else message) from None


def default_store_path() -> Path:
    """``chats.db`` in the user's data folder: where ``chat`` keeps sessions and ``sessions`` looks.

    ``$XDG_DATA_HOME/finite-memory`` (``~/.local/share/finite-memory``) on Linux,
    ``~/Library/Application Support/finite-memory`` on macOS, ``%APPDATA%\\finite-memory`` on Windows.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "finite-memory" / "chats.db"


def add_store_flag(parser: argparse.ArgumentParser) -> None:
    """``--store URL``, defaulting to the shared default store (its path shown in the help)."""
    parser.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help=f"store URL, e.g. sqlite:///chats.db (default: sqlite:///{default_store_path()})",
    )


def store_url(given: str | None) -> str:
    """The store URL: the one given, or the default store's."""
    return given if given is not None else f"sqlite:///{default_store_path()}"


def writable_file(path: str, name: str) -> Path:
    """Check, before any long work, that ``path`` can be written; the error names the flag ``name``."""
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"argument {name}: {path!r} is a folder, not a file")
    folder = target.parent
    if not folder.is_dir():
        raise ValueError(f"argument {name}: folder {str(folder)!r} does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
    except OSError as exc:
        raise ValueError(f"argument {name}: cannot write in {str(folder)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return target


def write_output(target: Path, text: str, name: str) -> None:
    """Write ``text`` to ``target`` atomically; if that fails after all, keep it in a temp file and say where."""
    from .._checkpoint import write_atomically

    data = text.encode("utf-8")
    try:
        write_atomically(target, data, mode=0o644)  # a report to share, not a private checkpoint
    except OSError as exc:
        fd, rescue = tempfile.mkstemp(prefix="finite-memory-", suffix=target.suffix)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        raise OSError(f"argument {name}: cannot write {str(target)!r} ({exc}); the output is in {rescue}") from None
    print(f"wrote {target}", file=sys.stderr)
