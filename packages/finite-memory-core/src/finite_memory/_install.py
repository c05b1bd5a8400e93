"""The pip command that installs another distribution of this project, as this installation can run it.

From a clone (an editable install, a source checkout on ``sys.path``, or a plain install
from the clone's folder) the command names the sibling folder, because the distributions
are not on an index there; otherwise it is the published form.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

CORE = "finite-memory-core"
#: Extras of core that stand for another distribution of this project.
EXTRA_OF: dict[str, str] = {"finite-memory-api": "api", "finite-memory-hf": "hf"}


def install_command(distribution: str, extras: str = "") -> str:
    """``pip install ...`` for ``distribution`` (``"finite-memory-api"``) with optional ``extras`` (``"minilm"``)."""
    suffix = f"[{extras}]" if extras else ""
    folder = _clone_packages()
    if folder is not None and (folder / distribution / "pyproject.toml").is_file():
        return f"pip install {shlex.quote(f'{folder / distribution}{suffix}')}"
    if distribution in EXTRA_OF and not extras:
        return f"pip install '{CORE}[{EXTRA_OF[distribution]}]'"
    return f"pip install {shlex.quote(distribution + suffix)}"


def _clone_packages() -> Path | None:
    """The ``packages/`` folder of the clone this core came from, if it came from one."""
    here = Path(__file__).resolve().parents[2]  # .../packages/finite-memory-core when run from the clone
    if (here / "pyproject.toml").is_file() and here.name == CORE:
        return here.parent
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        recorded = distribution(CORE).read_text("direct_url.json")
    except PackageNotFoundError:
        return None
    try:
        url = json.loads(recorded or "{}").get("url", "")
    except (ValueError, AttributeError):
        return None
    if not isinstance(url, str) or not url.startswith("file://"):
        return None
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    source = Path(url2pathname(urlsplit(url).path))
    return source.parent if (source / "pyproject.toml").is_file() else None
