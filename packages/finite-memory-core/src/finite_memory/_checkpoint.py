"""Checkpoints: a whole ``Memory`` as versioned, checksummed JSON, written atomically.

Layout of a file (``version`` 1)::

    {"checksum": "sha256:<hex>", "format": "finite-memory/checkpoint", "version": 1,
     "memory": {"session", "system", "max_tokens", "reserve_output", "max_policy_ms",
                "policy": {"name", "options", "state"},
                "tokenizer": {"kind": "approx", "per_message", "per_prompt", "state"} | {"kind": <class>},
                "messages": [Message.to_dict(), ...]}}

The checksum is the sha256 of the canonical JSON (sorted keys, no spaces, UTF-8) of
every top-level field but ``checksum``. Turns are the messages' ``turn`` numbers; policy
indexes are rebuilt by replaying the messages through ``policy.on_add``, and what the
policy cannot rebuild comes back through ``policy.load_state``. No pickle: nothing in a
file is ever executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._checkpoint_schema import check_archive, check_body
from ._errors import CheckpointError, UnknownPluginError
from ._message import Message
from ._tokenizer import ApproxTokenizer, Tokenizer
from .stores._base import paused_gc

if TYPE_CHECKING:
    from ._memory import Memory
    from .policies import Policy

FORMAT = "finite-memory/checkpoint"
#: The version this code writes.
VERSION = 1
#: ``MIGRATIONS[v]`` turns a version-``v`` document into a version ``v + 1`` one.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def canonical(document: dict[str, Any]) -> bytes:
    """The bytes the checksum covers: every field but ``checksum``, canonically encoded."""
    body = {key: value for key, value in document.items() if key != "checksum"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def checksum(document: dict[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical(document)).hexdigest()


# -- saving ------------------------------------------------------------------------------


def dump(memory: Memory) -> bytes:
    """The checkpoint file's bytes: ``checksum`` first, then the canonical form it covers.

    Writing the canonical bytes themselves lets :func:`parse` check an untouched file by
    hashing it as it is, without encoding the document again.
    """
    policy = memory.policy
    body = {
        "session": memory.session,
        "system": memory.system,
        "max_tokens": memory.max_tokens,
        "reserve_output": memory.reserve_output,
        "max_policy_ms": memory.max_policy_ms,
        "policy": {
            "name": policy.name,
            "options": policy.options(),
            "state": policy.state(),
        },
        "tokenizer": _tokenizer_state(memory.tokenizer),
        "messages": [m.to_dict() for m in memory.messages],
    }
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION, "memory": body}
    try:
        encoded = canonical(document)
    except (TypeError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"cannot save: {_unsaveable_part(body)} is not JSON ({exc})") from None
    digest = hashlib.sha256(encoded).hexdigest()
    return _prefix(f"sha256:{digest}") + encoded[1:]


def _unsaveable_part(body: dict[str, Any]) -> str:
    """Which part of a checkpoint body cannot be encoded, in words (messages are checked when built)."""
    policy = body["policy"]
    parts = {
        f"the options of policy {policy['name']!r}": policy["options"],
        f"the state of policy {policy['name']!r} (what its state() returns)": policy["state"],
        "the tokenizer's calibration": body["tokenizer"],
        "the memory settings": {k: v for k, v in body.items() if k not in ("policy", "tokenizer", "messages")},
    }
    for part, value in parts.items():
        try:
            canonical({"part": value})
        except (TypeError, ValueError, RecursionError):
            return part
    return "a message"


def _prefix(stated: str) -> bytes:
    return b'{"checksum":' + json.dumps(stated).encode() + b","


def save(memory: Memory, path: str | os.PathLike[str]) -> None:
    """Write ``memory`` to ``path`` atomically (see :func:`write_atomically`)."""
    write_atomically(Path(path), dump(memory))


def write_atomically(target: Path, data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``target``: temp file in the same folder, fsync, rename, fsync of the folder.

    A reader sees the old file or the new one, never a half-written one. The file is private
    to its owner (0600) unless ``mode`` says otherwise.
    """
    folder = target.parent
    fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        if mode is not None:
            os.chmod(temp, mode)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform that cannot open folders (Windows): the rename is what we have
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _tokenizer_state(tokenizer: Tokenizer) -> dict[str, Any]:
    if type(tokenizer) is ApproxTokenizer:
        return {
            "kind": "approx",
            "per_message": tokenizer.per_message,
            "per_prompt": tokenizer.per_prompt,
            "state": tokenizer.state(),
        }
    # An exact tokenizer belongs to its backend; a Chat sets it again (see Memory.load).
    return {"kind": f"{type(tokenizer).__module__}.{type(tokenizer).__qualname__}"}


# -- loading -----------------------------------------------------------------------------


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked, migrated document in ``path``; the file is only read."""
    where = str(path)
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"{where}: no such checkpoint") from None
    except OSError as exc:
        raise CheckpointError(f"{where}: cannot read ({exc.strerror})") from None
    return parse(data, where)


def parse(data: bytes, where: str = "checkpoint") -> dict[str, Any]:
    """The checked, migrated document in ``data``; raises :class:`CheckpointError` saying what is wrong."""
    if not data.strip():
        raise CheckpointError(f"{where}: empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CheckpointError(f"{where}: not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        cut_short = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        problem = "truncated" if cut_short else "not JSON"
        raise CheckpointError(f"{where}: {problem} ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise CheckpointError(f"{where}: nested too deeply to be a checkpoint") from None
    except ValueError as exc:  # a constant, or an integer too long to convert
        raise CheckpointError(f"{where}: not a valid checkpoint number ({exc})") from None
    if not isinstance(document, dict):
        raise CheckpointError(
            f"{where}: not a checkpoint (top level is a JSON {type(document).__name__}, not an object)"
        )
    if document.get("format") != FORMAT:
        raise CheckpointError(f"{where}: not a finite-memory checkpoint (format is {document.get('format')!r})")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise CheckpointError(f"{where}: version must be an int, got {version!r}"[:300])
    if version > VERSION:
        raise CheckpointError(
            f"{where}: checkpoint version {version} is newer than this finite-memory supports ({VERSION}); "
            "upgrade finite-memory-core"
        )
    if version < min(MIGRATIONS, default=VERSION) or any(step not in MIGRATIONS for step in range(version, VERSION)):
        raise CheckpointError(f"{where}: unknown checkpoint version {version}")
    stated = document.get("checksum")
    if not isinstance(stated, str):
        raise CheckpointError(f"{where}: missing field 'checksum'")
    prefix = _prefix(stated)
    if data.startswith(prefix) and "sha256:" + hashlib.sha256(b"{" + data[len(prefix) :]).hexdigest() == stated:
        actual = stated  # the file is byte for byte what save() wrote
    else:
        actual = None
    try:
        actual = actual or checksum(document)
    except RecursionError:
        raise CheckpointError(f"{where}: nested too deeply to be a checkpoint") from None
    except ValueError as exc:  # 1e999 parses as inf, which no checkpoint holds
        raise CheckpointError(f"{where}: a number out of range ({exc})") from None
    if stated != actual:
        raise CheckpointError(f"{where}: checksum mismatch (the file is corrupted or was edited)")
    for step in range(version, VERSION):
        try:
            document = MIGRATIONS[step](document)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CheckpointError(f"{where}: cannot migrate from version {step}: {exc!r}") from None
        document["version"] = step + 1
    check_body(document, where)
    return document  # type: ignore[no-any-return]


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def load(
    path: str | os.PathLike[str],
    *,
    tokenizer: Tokenizer | None = None,
    policy: str | Policy | type[Policy] | None = None,
) -> Memory:
    """The memory saved in ``path`` (see :meth:`Memory.load`)."""
    return restore(read(path), where=str(path), tokenizer=tokenizer, policy=policy)


def restore(
    document: dict[str, Any],
    *,
    where: str = "checkpoint",
    tokenizer: Tokenizer | None = None,
    policy: str | Policy | type[Policy] | None = None,
) -> Memory:
    """A memory from a checked document; every problem becomes a :class:`CheckpointError`."""
    from ._memory import Memory

    body = document["memory"]
    with paused_gc():
        messages = _messages(body["messages"], where)
    try:
        check_archive(messages)
    except ValueError as exc:
        raise CheckpointError(f"{where}: bad message: {exc}"[:500]) from None
    spec = body["policy"]
    rebuilt = _rebuild_policy(spec, policy, where)
    if tokenizer is None:
        tokenizer = _restore_tokenizer(body["tokenizer"], where)
    try:
        memory = Memory(
            rebuilt,
            max_tokens=body["max_tokens"],
            reserve_output=body["reserve_output"],
            system=body["system"],
            tokenizer=tokenizer,
            max_policy_ms=body["max_policy_ms"],
            session=body["session"],
        )
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{where}: bad memory settings: {exc}"[:500]) from None
    try:
        with paused_gc():
            memory._apply(messages)
        if rebuilt.name == spec["name"]:  # another policy starts afresh on the same archive
            rebuilt.load_state(spec["state"])
    except Exception as exc:
        raise CheckpointError(f"{where}: cannot restore policy {spec['name']!r} state: {exc!r}"[:500]) from None
    memory._store.append(memory.session, messages)
    return memory


def _rebuild_policy(spec: dict[str, Any], given: str | Policy | type[Policy] | None, where: str) -> Policy:
    """The policy to restore into: the saved one by name, or the caller's (built with the saved options when it is
    the saved policy's class)."""
    from ._registry import load_policy
    from .policies import Policy

    name, options = spec["name"], spec["options"]
    if isinstance(given, Policy):
        return given
    if given is not None and not isinstance(given, str) and not (isinstance(given, type) and issubclass(given, Policy)):
        raise TypeError(f"policy must be a policy name, a Policy class or a Policy instance, not {given!r}")
    try:
        if given is None or isinstance(given, str):
            wanted = name if given is None else given
            return load_policy(wanted, **(options if wanted == name else {}))
        return given(**options) if given.name == name else given()
    except UnknownPluginError as exc:
        raise CheckpointError(
            f"{where}: cannot rebuild policy {name!r}: {exc}; for a policy of your own, "
            "pass its class (or an instance) as Memory.load(path, policy=...)"[:500]
        ) from None
    except Exception as exc:
        raise CheckpointError(f"{where}: cannot rebuild policy {name!r}: {exc}"[:500]) from None


def _messages(items: list[Any], where: str) -> list[Message]:
    """The archived messages, each through ``Message`` validation like any added one."""
    messages = []
    for index, data in enumerate(items):
        try:
            messages.append(Message.from_dict(data))
        except (TypeError, ValueError, RecursionError) as exc:
            raise CheckpointError(f"{where}: bad message memory.messages[{index}]: {exc}"[:500]) from None
    return messages


def _restore_tokenizer(spec: dict[str, Any], where: str) -> Tokenizer:
    """The saved :class:`ApproxTokenizer` (its fields were checked by ``_checkpoint_schema``)."""
    if spec["kind"] != "approx":
        return ApproxTokenizer()  # an exact tokenizer comes back with its backend (Chat sets it)
    try:
        # the constructor bounds the overheads (a crafted per_prompt of 10**9 is refused) and
        # load_state every number of the calibration
        tokenizer = ApproxTokenizer(per_message=spec["per_message"], per_prompt=spec["per_prompt"])
        tokenizer.load_state(spec["state"])
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"{where}: bad tokenizer calibration: {exc}"[:500]) from None
    return tokenizer
