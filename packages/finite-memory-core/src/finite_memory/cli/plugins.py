"""``finite-memory plugins``: what is installed, in every plugin group, and how to get the rest."""

from __future__ import annotations

import argparse

from .._registry import ELSEWHERE, GROUPS, install_hint, plugins


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("plugins", help="list installed backends, policies, stores and models")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    for kind in GROUPS:
        print(f"{kind}:")
        found = plugins(kind)
        for name, ep in sorted(found.items()):
            dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "built in"
            print(f"  {name:<16} {ep.value:<48} ({dist})")
        missing = [name for name in ELSEWHERE.get(kind, {}) if name not in found]
        for name in missing:
            print(f"  {name:<16} not installed; {install_hint(kind, name)}")
        if not found and not missing:
            print("  (none)")
    return 0
