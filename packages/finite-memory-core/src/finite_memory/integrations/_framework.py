"""The error an integration raises when its framework is not installed."""

from __future__ import annotations


def missing(framework: str, extra: str, cause: ImportError) -> ImportError:
    """An ``ImportError`` naming the extra that installs ``framework``."""
    return ImportError(
        f"finite_memory.integrations.{extra} needs {framework} ({cause}); "
        f'install it with: pip install "finite-memory-core[{extra}]"'
    )
