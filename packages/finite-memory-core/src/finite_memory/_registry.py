"""Plugins through entry points: backends, policies, stores, embedders, summarizers, scorers, CLI commands."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from ._errors import BackendNotInstalled, UnknownPluginError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from ._backend import Backend
    from .policies import Policy

GROUPS: dict[str, str] = {
    "backends": "finite_memory.backends",
    "policies": "finite_memory.policies",
    "stores": "finite_memory.stores",
    "embedders": "finite_memory.embedders",
    "summarizers": "finite_memory.summarizers",
    "scorers": "finite_memory.scorers",
    "commands": "finite_memory.commands",
}

_SINGULAR = {kind: kind.removesuffix("s").replace("policie", "policy") for kind in GROUPS}

#: Backend schemes that ship in a distribution of this project, and how to get them.
KNOWN_BACKENDS: dict[str, str] = {
    "openai": "pip install 'finite-memory-core[api]'",
    "anthropic": "pip install 'finite-memory-core[api]'",
    "hf": "pip install 'finite-memory-core[hf]'",
}


@cache
def plugins(kind: str) -> dict[str, EntryPoint]:
    """The installed plugins of one kind (``"backends"``, ``"policies"``, ...), by name."""
    if kind not in GROUPS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(GROUPS)}")
    from importlib.metadata import entry_points  # costs ~10 ms: only when a plugin is looked up

    return {ep.name: ep for ep in entry_points(group=GROUPS[kind])}


def load_plugin(kind: str, name: str) -> Any:
    """The object a plugin's entry point names (a class or a factory)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {_SINGULAR[kind]} name must be a non-empty string, got {name!r}")
    installed = plugins(kind)
    if name not in installed:
        if kind == "backends" and name in KNOWN_BACKENDS:
            raise BackendNotInstalled(f"backend {name!r} is not installed; install it with: {KNOWN_BACKENDS[name]}")
        listed = ", ".join(sorted(installed)) or "none"
        raise UnknownPluginError(f"unknown {_SINGULAR[kind]} {name!r}; installed {kind}: {listed}")
    try:
        return installed[name].load()
    except ImportError as exc:
        hint = KNOWN_BACKENDS.get(name) if kind == "backends" else None
        how = f"; install it with: {hint}" if hint else ""
        raise BackendNotInstalled(f"{_SINGULAR[kind]} {name!r} cannot be imported ({exc}){how}") from exc


def load_backend(spec: str, **options: Any) -> Backend:
    """A backend from ``"scheme:model"`` (``"openai:gpt-4o-mini"``, ``"hf:/path/to/model"``).

    ``options`` go to the backend's factory (``base_url``, ``api_key``, ``device``...).
    A scheme whose package is missing raises :class:`BackendNotInstalled` naming the
    pip command; an unknown one raises :class:`UnknownPluginError` listing those installed.
    """
    if not isinstance(spec, str):
        raise TypeError(f"a backend spec must be a 'scheme:model' string, got {type(spec).__name__}")
    scheme, sep, model = spec.partition(":")
    if not sep or not scheme or not model:
        raise ValueError(f"a backend spec is 'scheme:model' (for example 'openai:gpt-4o-mini'), got {spec!r}")
    factory = load_plugin("backends", scheme)
    return factory(model, **options)  # type: ignore[no-any-return]


def load_policy(name: str, **options: Any) -> Policy:
    """A policy by its registered name, built with ``options``."""
    factory = load_plugin("policies", name)
    try:
        return factory(**options)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise TypeError(f"bad options for policy {name!r}: {exc}") from None
