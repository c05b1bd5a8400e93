"""The memory's last word on the budget: fixed parts first, then the whole prompt counted exactly.

The system messages and the newest turn are placed by the memory, before a policy chooses
anything (:func:`fit_fixed`); once the policy and the layout engine have chosen, the whole
prompt is counted with the tokenizer itself and cut until it fits (:func:`fit_budget`),
because a tokenizer need not be additive.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._counting import TokenCounter
from ._message import Message
from ._truncate import fit_messages, marked_cost
from ._turns import Turn


def fit_fixed(
    pinned: list[Message], newest: list[Message], room: int, counter: TokenCounter
) -> tuple[list[Message], list[Message], int]:
    """Pinned system messages and the newest turn's messages, cut to fit ``room`` together.

    Returns both and how many messages were cut.
    """
    pinned_cost = sum(counter.message(m) for m in pinned)
    newest_cost = sum(counter.message(m) for m in newest)
    if pinned_cost + newest_cost <= room:
        return pinned, newest, 0
    truncated = 0
    pinned_room = min(pinned_cost, max(room - newest_cost, room // 2 if newest else room))
    if pinned_cost > pinned_room:
        fitted = fit_messages(pinned, pinned_room, counter)
        while fitted is None and len(pinned) > 1:  # too many to cut: drop the oldest added ones first
            pinned = pinned[:1] + pinned[2:]
            fitted = fit_messages(pinned, pinned_room, counter)
        if fitted is None:  # its share is smaller than a marker: the system prompt still goes first
            fitted = fit_messages(pinned, max(pinned_room, marked_cost(pinned[0], counter)), counter)
        pinned = fitted or []
        truncated += len(pinned)
    newest_room = room - sum(counter.message(m) for m in pinned)
    if newest_cost > newest_room:
        fitted = fit_messages(newest, newest_room, counter)
        if fitted is None:  # too many messages for even their markers: keep the question
            questions = [m for m in newest if m.role == "user"]
            fitted = fit_messages(questions, newest_room, counter) if questions else None
        newest = fitted or []
        truncated += 1
    return pinned, newest, truncated


@dataclass
class Fitted:
    """A prompt that fits: its messages and exact count, what is left of each part, and the cuts."""

    messages: list[Message]
    tokens: int
    pinned: int  # system messages at its head
    prefix: int  # summary messages after them
    turns: int  # older turns kept
    truncated: int  # messages cut to fit


def fit_budget(
    pinned: list[Message],
    prefix: list[Message],
    turns: list[Turn],
    newest: list[Message],
    budget: int,
    counter: TokenCounter,
) -> Fitted:
    """``pinned + prefix + turns + newest``, counted exactly and cut until it fits ``budget``.

    What goes first when the estimate was off: the first older turn, then the summary, then
    the newest turn's text (cut with a marker), then the system messages.
    """
    turns = list(turns)
    truncated = 0
    while True:
        messages = pinned + prefix + [m for t in turns for m in t.messages] + newest
        tokens = _count(pinned + prefix + newest, turns, messages, counter)
        if tokens <= budget:
            break
        if turns:
            turns.pop(0)
        elif prefix:
            prefix = []
        elif newest:
            cut = fit_messages(newest, sum(counter.message(m) for m in newest) - (tokens - budget), counter)
            truncated += 1
            newest = cut or []
        elif pinned:
            pinned = []
        else:
            break  # an empty prompt over budget: nothing left to cut
    return Fitted(messages, tokens, len(pinned), len(prefix), len(turns), truncated)


def _count(loose: list[Message], turns: list[Turn], messages: list[Message], counter: TokenCounter) -> int:
    """The exact count of ``messages`` (``loose`` and the messages of ``turns``).

    An additive tokenizer's count is the sum of the turns' cached costs and the loose
    messages' ones, so a long context is not counted again every turn.
    """
    if counter.additive:
        key = counter.key
        return counter.base() + sum(counter.message(m) for m in loose) + sum(t.tokens(counter, key) for t in turns)
    return counter.messages(messages)
