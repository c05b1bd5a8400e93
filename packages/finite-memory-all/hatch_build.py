"""Build-time metadata of finite-memory-all: finite-memory-core's hook (``../finite-memory-core/hatch_build.py``).

Built from the clone, that hook is beside this package and used as it is, so the logic has
one copy. Built from an sdist, the dependencies are already fixed in its PKG-INFO and
hatchling calls no hook; the stand-in below only says so if one is ever asked for.
"""

from __future__ import annotations

import runpy
from pathlib import Path

from hatchling.metadata.plugin.interface import MetadataHookInterface

_CORE_HOOK = Path(__file__).resolve().parent.parent / "finite-memory-core" / "hatch_build.py"

if _CORE_HOOK.is_file():
    SiblingsFromTheClone = runpy.run_path(str(_CORE_HOOK))["SiblingsFromTheClone"]
else:

    class SiblingsFromTheClone(MetadataHookInterface):  # type: ignore[no-redef]
        """Outside the clone: nothing to point at."""

        def update(self, metadata: dict) -> None:  # type: ignore[type-arg]
            raise RuntimeError("finite-memory-all builds from the clone or from an sdist with fixed dependencies")
