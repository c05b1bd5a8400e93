"""Checks of policy options, with errors that say what is allowed."""

from __future__ import annotations

import math
from collections.abc import Iterable


def check_ints(policy: object, names: Iterable[str], minimum: int) -> None:
    """Each named option of ``policy`` is an int (not a bool) of at least ``minimum``."""
    for name in names:
        value = getattr(policy, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def check_number(policy: object, name: str, low: float, high: float = math.inf, *, optional: bool = False) -> None:
    """The named option is a finite number in ``[low, high]`` (or ``None`` when ``optional``)."""
    value = getattr(policy, name)
    if optional and value is None:
        return
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if number and math.isfinite(value) and low <= value <= high:
        return
    allowed = f"a finite number >= {low:g}" if high == math.inf else f"a number in [{low:g}, {high:g}]"
    raise ValueError(f"{name} must be {'None or ' if optional else ''}{allowed}, got {value!r}")
