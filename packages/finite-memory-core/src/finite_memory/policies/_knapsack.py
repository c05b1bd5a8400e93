"""0/1 knapsack: the set of items (messages, turns) of greatest total value within a budget."""

from __future__ import annotations

from collections.abc import Sequence

#: The capacity is cut into at most this many units; costs are rounded up to whole units,
#: so a packing never overruns, and the table stays small whatever the budget.
UNITS = 128


def knapsack(values: Sequence[float], costs: Sequence[int], capacity: int) -> list[int]:
    """Indices of the items (ascending) of greatest total value whose costs sum to at most ``capacity``.

    Dynamic programming over ``capacity`` in units of ``ceil(capacity / UNITS)`` tokens:
    O(items * UNITS) time. Rounding costs up can leave a little room unused; the
    callers fill it afterwards. Items of value <= 0 or cost > capacity are never taken.
    """
    if capacity <= 0 or not values:
        return []
    unit = -(-capacity // UNITS)
    slots = capacity // unit
    best = [0.0] * (slots + 1)
    took: list[bytearray] = []
    for value, cost in zip(values, costs, strict=True):
        row = bytearray(slots + 1)
        took.append(row)
        weight = -(-cost // unit) if cost > 0 else 0
        if value <= 0 or weight > slots:
            continue
        for c in range(slots, weight - 1, -1):
            candidate = best[c - weight] + value
            if candidate > best[c]:
                best[c] = candidate
                row[c] = 1
    chosen = []
    c = slots
    for i in range(len(took) - 1, -1, -1):
        if took[i][c]:
            chosen.append(i)
            c -= -(-costs[i] // unit) if costs[i] > 0 else 0
    chosen.reverse()
    return chosen
