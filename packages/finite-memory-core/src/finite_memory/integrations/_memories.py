"""Memories the integrations manage: emptying one for a framework's ``clear``/``reset``."""

from __future__ import annotations

from .._memory import Memory
from .._registry import load_policy


def emptied(memory: Memory) -> Memory:
    """Delete ``memory``'s session from its store and return an empty memory with the same settings.

    Same store and session, policy (rebuilt from its name and options, so no index or
    summary survives), budget, system prompt, tokenizer and latency budget.
    """
    memory.store.delete(memory.session)
    policy = load_policy(memory.policy.name, **memory.policy.options())
    return Memory(
        policy,
        memory.max_tokens,
        memory.reserve_output,
        memory.system,
        tokenizer=memory.tokenizer,
        max_policy_ms=memory.max_policy_ms,
        store=memory.store,
        session=memory.session,
    )
