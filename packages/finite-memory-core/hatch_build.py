"""Build-time metadata: this repository's own distributions resolve from the clone.

The pins in ``[tool.hatch.metadata.hooks.custom]`` (``finite-memory-api==0.1.0``...) become
direct references to the sibling folders (``finite-memory-api @ file:///.../packages/finite-memory-api``)
when those folders exist, so ``pip install "./packages/finite-memory-core[api]"`` needs no index.
A release build (``FINITE_MEMORY_RELEASE=1``), or a build with no sibling folders, keeps the pins.
"""

from __future__ import annotations

import os
from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface
from packaging.requirements import Requirement

FIELDS = ("dependencies", "optional-dependencies")


class SiblingsFromTheClone(MetadataHookInterface):
    """Fills the dynamic dependency fields from the hook's configuration."""

    def update(self, metadata: dict) -> None:  # type: ignore[type-arg]
        release = os.environ.get("FINITE_MEMORY_RELEASE", "") not in ("", "0")
        packages = Path(self.root).resolve().parent
        for field in FIELDS:
            if field not in metadata.get("dynamic", ()):
                continue
            value = self.config[field]
            if isinstance(value, dict):
                metadata[field] = {extra: _locate(reqs, packages, release) for extra, reqs in value.items()}
            else:
                metadata[field] = _locate(value, packages, release)


def _locate(requirements: list[str], packages: Path, release: bool) -> list[str]:
    out = []
    for text in requirements:
        requirement = Requirement(text)
        folder = packages / requirement.name
        if release or not requirement.name.startswith("finite-memory-") or not (folder / "pyproject.toml").is_file():
            out.append(text)
            continue
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        out.append(f"{requirement.name}{extras} @ {folder.as_uri()}")
    return out
