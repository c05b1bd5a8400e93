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

#: Core's own plugins, also found where no entry-point metadata is installed (a source checkout
#: on ``sys.path``, a vendored copy); core's pyproject registers the same objects.
BUILTIN: dict[str, dict[str, str]] = {
    "backends": {"echo": "finite_memory.testing:echo_backend"},
    "policies": {
        "sliding": "finite_memory.policies.sliding:Sliding",
        "rolling_summary": "finite_memory.policies.rolling_summary:RollingSummary",
        "hybrid": "finite_memory.policies.hybrid:Hybrid",
        "importance": "finite_memory.policies.importance:Importance",
        "semantic": "finite_memory.policies.semantic:Semantic",
    },
    "stores": {
        "memory": "finite_memory.stores.memory:InMemoryStore",
        "sqlite": "finite_memory.stores.sqlite:SQLiteStore",
        "postgresql": "finite_memory.stores.postgres:PostgresStore",
        "postgres": "finite_memory.stores.postgres:PostgresStore",
    },
    "embedders": {"hashing": "finite_memory.embedders:HashingEmbedder"},
    "scorers": {"information": "finite_memory._information:Information"},
    "summarizers": {"extractive": "finite_memory._extractive:Extractive"},
    "commands": {},
}

#: Plugins that ship in another distribution of this project: kind -> name -> (distribution, extras).
ELSEWHERE: dict[str, dict[str, tuple[str, str]]] = {
    "backends": {
        "openai": ("finite-memory-api", ""),
        "anthropic": ("finite-memory-api", ""),
        "hf": ("finite-memory-hf", ""),
    },
    "embedders": {"minilm": ("finite-memory-hf", "minilm")},
    "scorers": {"attention": ("finite-memory-hf", "")},
    "summarizers": {"model": ("finite-memory-hf", "")},
    "commands": {"serve": ("finite-memory-api", "serve")},
}


def install_hint(kind: str, name: str) -> str | None:
    """``"it comes with DIST: pip install ..."`` for a plugin that ships in another distribution of this project."""
    where = ELSEWHERE.get(kind, {}).get(name)
    if where is None:
        return None
    from ._install import install_command

    return f"it comes with {where[0]}: {install_command(*where)}"


@cache
def plugins(kind: str) -> dict[str, EntryPoint]:
    """The installed plugins of one kind (``"backends"``, ``"policies"``, ...), by name."""
    if kind not in GROUPS:
        raise ValueError(f"unknown plugin kind {kind!r}; kinds: {', '.join(GROUPS)}")
    from importlib.metadata import EntryPoint, entry_points  # costs ~10 ms: only when a plugin is looked up

    found = {name: EntryPoint(name, value, GROUPS[kind]) for name, value in BUILTIN[kind].items()}
    found.update((ep.name, ep) for ep in entry_points(group=GROUPS[kind]))
    return found


def load_plugin(kind: str, name: str) -> Any:
    """The object a plugin's entry point names (a class or a factory)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"a {_SINGULAR[kind]} name must be a non-empty string, got {name!r}")
    installed = plugins(kind)
    if name not in installed:
        hint = install_hint(kind, name)
        if hint and kind == "backends":
            raise BackendNotInstalled(f"backend {name!r} is not installed; {hint}")
        if hint:
            raise UnknownPluginError(f"{_SINGULAR[kind]} {name!r} is not installed; {hint}")
        listed = ", ".join(sorted(installed)) or "none"
        raise UnknownPluginError(f"unknown {_SINGULAR[kind]} {name!r}; installed {kind}: {listed}")
    try:
        return installed[name].load()
    except ImportError as exc:
        hint = install_hint(kind, name)
        raise BackendNotInstalled(
            f"{_SINGULAR[kind]} {name!r} cannot be imported ({exc})" + (f"; {hint}" if hint else "")
        ) from exc


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
