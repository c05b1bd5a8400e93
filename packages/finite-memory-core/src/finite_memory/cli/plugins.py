"""``finite-memory plugins``: what is installed, in every plugin group."""

from __future__ import annotations

import argparse

from .._registry import GROUPS, KNOWN_BACKENDS, plugins


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("plugins", help="list installed backends, policies, stores and models")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for kind in GROUPS:
        print(f"{kind}:")
        found = plugins(kind)
        for name, ep in sorted(found.items()):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?"
            print(f"  {name:<16} {ep.value:<48} ({dist})")
        if kind == "backends":
            for name, how in KNOWN_BACKENDS.items():
                if name not in found:
                    print(f"  {name:<16} not installed: {how}")
        elif not found:
            print("  (none)")
    return 0
