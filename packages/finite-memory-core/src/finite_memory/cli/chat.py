"""``finite-memory chat``: an interactive chat whose memory persists in a store.

The backend loads when the command runs, so building the parser imports no HTTP client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path
from typing import Any, TextIO

from .._chat import Chat, Reply
from .._errors import BackendError
from .._memory import Memory

HELP = """commands:
  /stats        memory stats of the last turn
  /stats on|off show them after every turn
  /help         this list
  /quit         leave (so does end of input)"""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("chat", help="chat with a model in the terminal; the memory persists in SQLite")
    parser.add_argument("--backend", required=True, help="scheme:model, e.g. openai:gpt-4o-mini or anthropic:claude-…")
    parser.add_argument("--base-url", default=None, help="the server's API root, e.g. http://localhost:8000/v1")
    parser.add_argument("--policy", default="sliding", help="memory policy (default: sliding)")
    parser.add_argument(
        "--budget", type=int, default=4096, help="context budget in tokens, prompt and reply (default: 4096)"
    )
    parser.add_argument("--reserve", type=int, default=None, help="tokens kept for the reply (default: a quarter)")
    parser.add_argument("--system", default=None, help="a system prompt")
    parser.add_argument("--session", default="default", help="the conversation's name in the store (default: default)")
    parser.add_argument("--store", default=None, help="store URL (default: sqlite:///<user data dir>/chats.db)")
    parser.add_argument("--stats", action="store_true", help="show memory stats after every turn")
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="print each reply when it is whole")
    parser.set_defaults(func=run)


def default_store() -> str:
    """``sqlite:///`` URL of ``chats.db`` in the user's data folder (created when missing)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    folder = base / "finite-memory"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'chats.db'}"


def run(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {} if args.base_url is None else {"base_url": args.base_url}
    memory = Memory(
        args.policy,
        max_tokens=args.budget,
        reserve_output=args.reserve,
        system=args.system,
        store=args.store or default_store(),
        session=args.session,
    )
    with memory, Chat(args.backend, memory, **options) as chat:
        out = sys.stdout
        print(f"{chat.backend.name}, session {args.session!r} ({len(memory)} messages); /help for commands", file=out)
        return _loop(chat, args, sys.stdin, out)


def _loop(chat: Chat, args: argparse.Namespace, lines: TextIO, out: TextIO) -> int:
    show_stats = args.stats
    read = _prompt if lines.isatty() else lines.readline
    while True:
        line = read()
        if not line:
            return 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, value = text.partition(" ")
            if command in ("/quit", "/exit"):
                return 0
            if command == "/stats" and value in ("on", "off"):
                show_stats = value == "on"
            elif command == "/stats":
                print(_stats(chat) if chat.last_reply else "no turn yet", file=out)
            else:
                print(HELP, file=out)
            continue
        if _turn(chat, text, args.stream, out) and show_stats:
            print(_stats(chat), file=out)


def _prompt() -> str:
    """A line typed at the terminal, with line editing and history where ``readline`` exists."""
    with contextlib.suppress(ImportError):  # input() edits lines and keeps history once readline is loaded
        import readline  # noqa: F401
    try:
        return input("you> ") + "\n"
    except EOFError:
        return ""


def _turn(chat: Chat, text: str, stream: bool, out: TextIO) -> bool:
    """One turn, printed; an error or Ctrl-C cancels it and leaves the memory as it was."""
    out.write("ai> ")
    out.flush()
    try:
        if stream:
            for piece in chat.stream(text):
                out.write(piece)
                out.flush()
        else:
            out.write(chat.send(text).text)
    except BackendError as exc:
        print(f"\n[error: {exc}; this turn was not saved]", file=out)
        return False
    except KeyboardInterrupt:
        print("\n[cancelled; this turn was not saved]", file=out)
        return False
    out.write("\n")
    return True


def _stats(chat: Chat) -> str:
    reply: Reply | None = chat.last_reply
    assert reply is not None
    s, usage = reply.stats, reply.usage
    memory = chat.memory
    parts = [
        f"context {s['context_tokens']}/{memory.budget} tokens",
        f"archive {len(memory)} messages in {len(memory.turns)} turns",
        f"dropped {s['dropped']} of {s['candidates']} older turns",
        f"policy {s['policy']} {s['policy_ms']:.2f} ms" + (" (fell back to sliding)" if s["fallback"] else ""),
    ]
    if usage:
        parts.append(
            f"server counted {usage.get('prompt_tokens')} prompt + {usage.get('completion_tokens')} reply tokens"
        )
    if "cached_prompt_tokens" in s:
        parts.append(
            f"prompt cache {s['cached_prompt_tokens']} cached / {s['uncached_prompt_tokens']} uncached this turn, "
            f"{s['session_cached_prompt_tokens']} / {s['session_uncached_prompt_tokens']} this session "
            f"({s['session_cache_rate']:.0%} cached)"
        )
    if reply.cut_off:
        parts.append(f"reply cut at its length limit ({reply.finish_reason})")
    if "request_ms" in s:
        parts.append(f"request {s['request_ms']:.0f} ms")
    return "[" + "; ".join(parts) + "]"
