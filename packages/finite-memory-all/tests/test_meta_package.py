from __future__ import annotations

import re
from importlib.metadata import requires

from finite_memory import plugins


def test_meta_package_depends_on_the_three_distributions() -> None:
    requirements = requires("finite-memory-all") or []
    names = {re.split(r"[=<>~! ;\[]", requirement, maxsplit=1)[0] for requirement in requirements}
    assert names == {"finite-memory-core", "finite-memory-api", "finite-memory-hf"}


def test_every_backend_scheme_is_registered() -> None:
    assert {"echo", "openai", "anthropic", "hf"} <= set(plugins("backends"))
