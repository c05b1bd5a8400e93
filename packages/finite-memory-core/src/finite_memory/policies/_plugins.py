"""Helpers for policy options that name a plugin (a summarizer, a scorer) or hold an instance."""

from __future__ import annotations

from typing import Any


def resolve(kind: str, spec: Any, protocol: type, needs: str) -> Any:
    """An instance from a registered name (its factory called with no arguments) or an instance.

    ``needs`` says in words what an instance must offer, for the error.
    """
    if isinstance(spec, str):
        from .._registry import load_plugin

        made = load_plugin(kind, spec)()
    else:
        made = spec
    if not isinstance(made, protocol):
        singular = kind.removesuffix("s")
        raise TypeError(
            f"{singular} must be a registered {singular} name or an object with {needs}, not {type(made).__name__}"
        )
    return made


def saved_name(kind: str, spec: Any) -> str:
    """How an option holding a plugin is written in a checkpoint: by its registered name.

    An instance saves by its ``name`` attribute when a plugin of that name is installed;
    any other instance cannot be saved and raises ``TypeError`` saying so.
    """
    if isinstance(spec, str):
        return spec
    name = getattr(spec, "name", None)
    if isinstance(name, str):
        from .._registry import plugins

        if name in plugins(kind):
            return name
    singular = kind.removesuffix("s")
    raise TypeError(
        f"this policy's {singular} ({type(spec).__name__}) is an instance that is not registered under its name "
        f"in finite_memory.{kind}, so it cannot be saved; give it by name instead"
    )
