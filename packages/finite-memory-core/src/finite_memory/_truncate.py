"""Fitting an oversized message or turn into a budget, with a visible marker."""

from __future__ import annotations

from ._counting import TokenCounter
from ._message import Message

MARKER = " [... {n} tokens cut by finite-memory ...] "


def truncate_text(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """``text`` cut to at most ``max_tokens`` tokens: its head and tail around a marker.

    The marker says how many tokens were cut: the count of the text it replaces.
    Returns ``text`` unchanged when it fits and ``""`` when not even the marker fits.
    """
    total = counter.text(text)
    if total <= max_tokens:
        return text

    def render(keep_chars: int) -> str:
        head = keep_chars * 2 // 3
        tail = len(text) - (keep_chars - head)
        return text[:head] + MARKER.format(n=counter.text(text[head:tail])) + text[tail:]

    if counter.text(render(0)) > max_tokens:
        return ""
    low, high = 0, len(text) - 1  # invariant: render(low) fits
    while low < high:
        mid = (low + high + 1) // 2
        if counter.text(render(mid)) <= max_tokens:
            low = mid
        else:
            high = mid - 1
    return render(low)


def fit_messages(messages: list[Message], budget: int, counter: TokenCounter) -> list[Message] | None:
    """The messages, their longest contents cut evenly, so their cost is at most ``budget``.

    Every message is kept (a tool result keeps its call); only contents shrink, the
    longest first, down to a common cap. Returns ``None`` when even empty contents
    with their markers do not fit.
    """
    costs = [counter.message(m) for m in messages]
    if sum(costs) <= budget:
        return messages
    overheads = [counter.message(m.with_content("")) for m in messages]
    contents = [max(0, c - o) for c, o in zip(costs, overheads, strict=True)]
    room = budget - sum(overheads)
    cap = _water_level(contents, room)
    minimum = counter.text(MARKER.format(n=10**6))
    if cap is None or cap < minimum:
        return None
    fitted = [
        m if size <= cap else m.with_content(truncate_text(m.content, cap, counter))
        for m, size in zip(messages, contents, strict=True)
    ]
    while sum(counter.message(m) for m in fitted) > budget and cap > minimum:
        cap -= max(1, cap // 8)  # a tokenizer that is not additive: tighten until it fits
        fitted = [
            m if size <= cap else m.with_content(truncate_text(m.content, cap, counter))
            for m, size in zip(messages, contents, strict=True)
        ]
    return fitted if sum(counter.message(m) for m in fitted) <= budget else None


def marked_cost(message: Message, counter: TokenCounter) -> int:
    """The least a message costs once cut: its overhead plus the widest marker."""
    return counter.message(message.with_content(MARKER.format(n=10**6)))


def _water_level(sizes: list[int], room: int) -> int | None:
    """The largest cap ``c`` with ``sum(min(s, c) for s in sizes) <= room``."""
    if room < 0:
        return None
    remaining = room
    ordered = sorted(sizes)
    for i, size in enumerate(ordered):
        left = len(ordered) - i
        if size * left > remaining:
            return remaining // left
        remaining -= size
    return ordered[-1] if ordered else 0
