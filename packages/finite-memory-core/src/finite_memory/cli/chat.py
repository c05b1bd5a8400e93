"""``finite-memory chat``: an interactive chat whose memory persists in a store.

The backend loads when the command runs, so building the parser imports no HTTP client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from typing import Any, TextIO

from .._chat import Chat, Reply
from .._errors import BackendError
from .._memory import MIN_BUDGET, Memory
from .._registry import load_backend, load_plugin
from ._args import add_store_flag, at_least, default_store_path, flag, non_empty, store_url
from ._terminal import Terminal

HELP = """commands:
  /stats        memory stats of the last turn
  /stats on|off show them after every turn
  /help         this list
  /quit         leave (so does end of input)"""

#: Hosted APIs behind a backend scheme: the variables that name the server and the key, and
#: whether the API root includes ``/v1``.
HOSTED: dict[str, tuple[str, str, bool]] = {
    "openai": ("OPENAI_BASE_URL", "OPENAI_API_KEY", True),
    "anthropic": ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", False),
}


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "chat",
        help="chat with a model in the terminal; the memory persists in SQLite",
        description="Chat with a model; each session's memory persists in a store. Exit status: 0, or 1 when "
        "the session ended on a failed turn, 2 on a bad argument.",
    )
    parser.add_argument("--backend", required=True, help="scheme:model, e.g. openai:gpt-4o-mini or anthropic:claude-…")
    parser.add_argument(
        "--base-url", default=None, help="the server's API root, e.g. http://localhost:8000/v1 (openai: with /v1)"
    )
    parser.add_argument("--policy", default="sliding", help="memory policy (default: sliding)")
    parser.add_argument(
        "--budget",
        type=at_least(MIN_BUDGET + 1),
        default=4096,
        help="context budget in tokens, prompt and reply (default: 4096)",
    )
    parser.add_argument(
        "--reserve", type=at_least(0), default=None, help="tokens kept for the reply (default: a quarter, at most 1024)"
    )
    parser.add_argument("--system", default=None, help="a system prompt")
    parser.add_argument(
        "--session", type=non_empty, default="default", help="the conversation's name in the store (default: default)"
    )
    add_store_flag(parser)
    parser.add_argument("--stats", action="store_true", help="show memory stats after every turn")
    parser.add_argument("--no-stream", dest="stream", action="store_false", help="print each reply when it is whole")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with flag("--policy"):
        load_plugin("policies", args.policy)
    _check_key(args)
    if args.store is None:
        default_store_path().parent.mkdir(parents=True, exist_ok=True)
    store = store_url(args.store)
    with flag(max_tokens="--budget", reserve_output="--reserve"):
        memory = Memory(
            args.policy,
            max_tokens=args.budget,
            reserve_output=args.reserve,
            system=args.system,
            store=store,
            session=args.session,
        )
    with memory:
        options: dict[str, Any] = {} if args.base_url is None else {"base_url": args.base_url}
        with flag("--backend"):
            backend = load_backend(args.backend, **options)
        with Chat(backend, memory) as chat:
            print(f"{chat.backend.name}, session {args.session!r} ({len(memory)} messages) in {store}")
            print("/help for commands")
            status = _loop(chat, args, sys.stdin, sys.stdout)
    if status:
        print("finite-memory chat: the session ended on a failed turn", file=sys.stderr)
    return status


def _check_key(args: argparse.Namespace) -> None:
    """A hosted API without its key fails here, before any request is sent (and retried)."""
    scheme = args.backend.partition(":")[0]
    if scheme not in HOSTED:
        return
    url_variable, key_variable, _ = HOSTED[scheme]
    if args.base_url is None and not os.environ.get(url_variable) and not os.environ.get(key_variable):
        raise ValueError(
            f"argument --backend: {args.backend} talks to {scheme}'s hosted API, which needs a key: set "
            f"{key_variable} (or give --base-url for a local server)"
        )


def _loop(chat: Chat, args: argparse.Namespace, lines: TextIO, stream: TextIO) -> int:
    """Read lines until end of input or /quit; 1 when the last turn failed, else 0."""
    out = Terminal(stream)  # model output is escaped on a terminal
    show_stats = args.stats
    failed = False
    read = _prompt if lines.isatty() else lines.readline
    while True:
        line = read()
        if not line:
            return 1 if failed else 0
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command, _, value = text.partition(" ")
            if command in ("/quit", "/exit"):
                return 1 if failed else 0
            if command == "/stats" and value in ("on", "off"):
                show_stats = value == "on"
            elif command == "/stats":
                print(_stats(chat) if chat.last_reply else "no turn yet", file=out)
            elif command == "/help":
                print(HELP, file=out)
            else:
                print(f"unknown command {command!r}\n{HELP}", file=out)
            continue
        failed = not _turn(chat, text, args, out)
        if not failed and show_stats:
            print(_stats(chat), file=out)


def _prompt() -> str:
    """A line typed at the terminal, with line editing and history where ``readline`` exists."""
    with contextlib.suppress(ImportError):  # input() edits lines and keeps history once readline is loaded
        import readline  # noqa: F401
    try:
        return input("you> ") + "\n"
    except EOFError:
        return ""


def _turn(chat: Chat, text: str, args: argparse.Namespace, out: Terminal) -> bool:
    """One turn, printed; an error or Ctrl-C cancels it and leaves the memory as it was."""
    out.write("ai> ")
    out.flush()
    try:
        if args.stream:
            for piece in chat.stream(text):
                out.write(piece)
                out.flush()
        else:
            out.write(chat.send(text).text)
    except BackendError as exc:
        print(f"\n[error: {exc}{_url_hint(exc, args)}; this turn was not saved]", file=out)
        return False
    except KeyboardInterrupt:
        print("\n[cancelled; this turn was not saved]", file=out)
        return False
    out.write("\n")
    return True


def _url_hint(exc: BackendError, args: argparse.Namespace) -> str:
    """For a 404 from a hosted API's protocol: whether ``--base-url`` should (not) end with ``/v1``."""
    scheme = args.backend.partition(":")[0]
    base_url = getattr(args, "base_url", None) or os.environ.get(HOSTED.get(scheme, ("", "", False))[0]) or ""
    if exc.status != 404 or scheme not in HOSTED or not base_url:
        return ""
    with_v1 = HOSTED[scheme][2]
    if base_url.rstrip("/").endswith("/v1") == with_v1:
        return ""
    if with_v1:
        return f" (the {scheme} backend's base URL is the API root including /v1: try {base_url.rstrip('/')}/v1)"
    return f" (the {scheme} backend's base URL is the server root without /v1: try {base_url.rstrip('/')[:-3]})"


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
