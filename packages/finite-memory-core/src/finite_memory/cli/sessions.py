"""``finite-memory sessions list|show|delete|export|forget``: manage the sessions in a store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._errors import StoreError
from .._memory import MIN_BUDGET, Memory
from .._registry import load_plugin
from ..stores import Store, open_store
from ._args import add_store_flag, at_least, flag, store_url
from ._terminal import Terminal, escaped


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("sessions", help="list, show, delete, export or forget the sessions in a store")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help)
        add_store_flag(p)
        return p

    action("list", "one line per session: name and message count")
    show = action("show", "print a session's messages")
    show.add_argument("session")
    show.add_argument("--last", type=at_least(1), default=None, metavar="N", help="only the last N messages")
    show.add_argument("--json", action="store_true", help="one JSON message per line")
    delete = action("delete", "delete a session and all its messages")
    delete.add_argument("session")
    export = action("export", "write a session to a checkpoint file (loadable with Memory.load)")
    export.add_argument("session")
    export.add_argument("path", help="checkpoint file to write")
    export.add_argument(
        "--policy",
        default="sliding",
        help="policy saved in the checkpoint (default: sliding)",
    )
    export.add_argument(
        "--max-tokens",
        type=at_least(MIN_BUDGET + 1),
        default=2048,
        help="budget saved in the checkpoint (default: 2048)",
    )
    forget = action("forget", "erase messages of a session for good: store, summary, indexes (see docs/stores.md)")
    forget.add_argument("session")
    forget.add_argument("--ids", type=_numbers, default=[], help="message ids, comma-separated (see sessions show)")
    forget.add_argument("--turns", type=_numbers, default=[], help="whole turns, comma-separated turn numbers")
    parser.set_defaults(func=run)


def _numbers(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    url = store_url(args.store)
    print(f"store: {url}", file=sys.stderr)
    if not _exists(url):
        if args.store is None and args.action == "list":
            print(f"(no sessions: {url} does not exist yet; finite-memory chat creates it)")
            return 0
        raise StoreError(f"no store at {url} (a mistyped path?); sessions never creates one")
    store = open_store(url)
    try:
        return _ACTIONS[args.action](store, args)
    finally:
        store.close()


def _exists(url: str) -> bool:
    """Whether a SQLite store's file is there (opening it would create it); other stores are asked."""
    if not url.startswith("sqlite:"):
        return True
    from ..stores.sqlite import parse_url

    return Path(parse_url(url)[0]).is_file()


def _require(store: Store, session: str) -> None:
    if session not in store.sessions():
        raise StoreError(f"no session {session!r} in {getattr(store, 'url', store)!r}")


def _list(store: Store, args: argparse.Namespace) -> int:
    names = store.sessions()
    for name in names:  # one line per session, whatever the name holds
        print(f"{escaped(name)}\t{store.count(name)} messages")
    if not names:
        print("(no sessions)")
    return 0


def _show(store: Store, args: argparse.Namespace) -> int:
    _require(store, args.session)
    messages = store.messages(args.session)
    if args.last is not None:
        messages = messages[-args.last :]
    out = Terminal(sys.stdout)
    for m in messages:
        if args.json:
            print(json.dumps(m.to_dict(), ensure_ascii=False), file=out)
        else:
            extra = f" [tool_calls: {', '.join(m.tool_call_ids)}]" if m.tool_calls else ""
            extra += f" [answers {m.tool_call_id}]" if m.tool_call_id else ""
            print(f"#{m.id} turn {m.turn} {m.role}: {m.content}{extra}", file=out)
    return 0


def _delete(store: Store, args: argparse.Namespace) -> int:
    _require(store, args.session)
    count = store.count(args.session)
    store.delete(args.session)
    print(f"deleted session {args.session!r} ({count} messages)")
    return 0


def _export(store: Store, args: argparse.Namespace) -> int:
    _require(store, args.session)
    with flag("--policy"):
        load_plugin("policies", args.policy)
    with flag(max_tokens="--max-tokens"):
        memory = Memory(args.policy, max_tokens=args.max_tokens, store=store, session=args.session)
    memory.save(args.path)
    print(f"exported session {args.session!r} ({len(memory)} messages) to {args.path}")
    return 0


def _forget(store: Store, args: argparse.Namespace) -> int:
    _require(store, args.session)
    if not args.ids and not args.turns:
        raise ValueError("say what to forget: --ids 3,4 and/or --turns 2")
    erased = Memory(store=store, session=args.session).forget(args.ids, turns=args.turns)
    print(f"forgot {len(erased)} messages from session {args.session!r} (ids {', '.join(map(str, erased))})")
    return 0


_ACTIONS = {"list": _list, "show": _show, "delete": _delete, "export": _export, "forget": _forget}
