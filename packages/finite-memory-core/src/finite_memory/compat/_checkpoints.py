"""Checkpoints in the reference's layout (``config``, ``state``, ``stats``, ``metadata``), both ways.

A file written here keeps the reference's fields, so the reference can read it too, and
embeds this project's own checksummed checkpoint of the memory under
``state.finite_memory``, which is what :func:`read` restores. A file written by the
reference has no such field: its ``conversation_history`` is replayed into a new memory
(its ``token_buffer`` holds the reference model's ids and is kept for inspection only).
A plain :meth:`Memory.save` file is read as well.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .._checkpoint import FORMAT, dump, parse, restore, write_atomically
from .._errors import CheckpointError
from .._memory import Memory
from .._message import Message
from .._tokenizer import Tokenizer
from ._stats import MemoryStats

#: ``metadata.format`` of a file written here.
COMPAT_FORMAT = "finite-memory/compat-checkpoint"

#: The reference's tuning fields in ``config``.
TUNING = ("window_size", "semantic_clusters", "summary_interval")


class ReferenceCheckpointError(CheckpointError, KeyError):
    """A checkpoint that cannot be loaded; a ``KeyError`` too, as the reference raised for a missing field."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class Loaded:
    """What a checkpoint holds: the reference's ``config``, the memory (or the messages to replay), stats, ids."""

    config: dict[str, Any]
    stats: MemoryStats
    token_buffer: list[int]
    memory: Memory | None = None
    history: list[Message] = field(default_factory=list)


def write(
    path: str | os.PathLike[str],
    *,
    config: dict[str, Any],
    memory: Memory,
    stats: MemoryStats,
    history: list[dict[str, Any]],
    token_buffer: list[int],
    model: str,
) -> Path:
    """Write a checkpoint atomically (temp file, fsync, rename) and return its path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "config": config,
        "state": {
            "token_buffer": token_buffer,
            "attention_scores": [],
            "summary_tokens": [],
            "tokens_since_summary": 0,
            "conversation_history": history,
            "finite_memory": json.loads(dump(memory)),
        },
        "stats": asdict(stats),
        "metadata": {"model": model, "turns": len(memory.turns), "format": COMPAT_FORMAT},
    }
    write_atomically(target, json.dumps(document, ensure_ascii=False, allow_nan=False, indent=1).encode())
    return target


def read(path: str | os.PathLike[str], tokenizer: Tokenizer | None) -> Loaded:
    """Read any of the three layouts; every problem raises :class:`ReferenceCheckpointError`."""
    where = str(path)
    try:
        data = Path(path).read_bytes()
        document = json.loads(data)
    except FileNotFoundError:
        raise ReferenceCheckpointError(f"{where}: no such checkpoint") from None
    except OSError as exc:
        raise ReferenceCheckpointError(f"{where}: cannot read ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:
        raise ReferenceCheckpointError(f"{where}: not JSON ({exc})"[:300]) from None
    try:
        if isinstance(document, dict) and document.get("format") == FORMAT:
            memory = restore(parse(data, where), where=where, tokenizer=tokenizer)
            config = {"max_tokens": memory.max_tokens, "memory_policy": memory.policy.name}
            return Loaded(config=config, stats=MemoryStats(), token_buffer=[], memory=memory)
        return _read_reference(document, where, tokenizer)
    except ReferenceCheckpointError:
        raise
    except CheckpointError as exc:
        raise ReferenceCheckpointError(str(exc)) from None


def _read_reference(document: Any, where: str, tokenizer: Tokenizer | None) -> Loaded:
    if not isinstance(document, dict):
        raise ReferenceCheckpointError(f"{where}: not a checkpoint (a JSON {type(document).__name__})")
    for name in ("config", "state", "stats"):
        if not isinstance(document.get(name), dict):
            raise ReferenceCheckpointError(f"{where}: missing field {name!r} (an object)")
    config, state = document["config"], document["state"]
    if not isinstance(config.get("max_tokens"), int) or not isinstance(config.get("memory_policy"), str):
        raise ReferenceCheckpointError(f"{where}: config needs max_tokens (int) and memory_policy (str)")
    for name in TUNING:
        if name in config and (not isinstance(config[name], int) or isinstance(config[name], bool)):
            raise ReferenceCheckpointError(f"{where}: config.{name} must be an int")
    try:
        stats = MemoryStats.from_dict(document["stats"])
        token_buffer = [int(t) for t in state.get("token_buffer", [])]
    except (TypeError, ValueError) as exc:
        raise ReferenceCheckpointError(f"{where}: {exc}"[:300]) from None
    loaded = Loaded(config=dict(config), stats=stats, token_buffer=token_buffer)
    embedded = state.get("finite_memory")
    if embedded is not None:
        checked = parse(json.dumps(embedded).encode(), f"{where} (state.finite_memory)")
        loaded.memory = restore(checked, where=where, tokenizer=tokenizer)
        loaded.config.update(max_tokens=loaded.memory.max_tokens, memory_policy=loaded.memory.policy.name)
    else:
        loaded.history = _history(state.get("conversation_history"), where)
    return loaded


def _history(entries: Any, where: str) -> list[Message]:
    if not isinstance(entries, list):
        raise ReferenceCheckpointError(f"{where}: missing field 'state.conversation_history' (a list)")
    messages = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ReferenceCheckpointError(f"{where}: conversation_history[{index}] is not an object")
        try:
            messages.append(Message.from_dict({"role": entry.get("role"), "content": entry.get("content")}))
        except (TypeError, ValueError) as exc:
            raise ReferenceCheckpointError(f"{where}: conversation_history[{index}]: {exc}") from None
    return messages
