"""The values a message may hold: text every store takes, and frozen JSON.

One rule set, checked once when a :class:`~finite_memory.Message` is built, so whatever
is archived can be saved (checkpoint JSON), stored (SQLite; PostgreSQL, whose ``text``
and ``jsonb`` refuse lone surrogates; its store escapes NUL) and sent (JSON request bodies):

- text is a ``str`` of valid Unicode: no lone surrogate (``"\\ud800"``, what a bad
  ``surrogateescape`` decode leaves, or a ``\\ud800`` escape in JSON);
- JSON values are ``str`` (as text), ``bool``, ``None``, ``int`` within 64 bits, finite
  ``float``, and lists and dicts with ``str`` keys of those, nested at most
  :data:`MAX_DEPTH` deep; tuples become lists.

Checked JSON is copied into :class:`FrozenDict` and :class:`FrozenList`: read-only
subclasses of ``dict`` and ``list``, so they compare equal to plain ones and encode with
``json`` as they are, but nobody can change an archived message through them. A value
that is already frozen was checked when it was built and is taken as it is.
"""

from __future__ import annotations

import json
import math
from typing import Any, NoReturn

#: How deep lists and dicts may nest in ``meta`` (a checkpoint's JSON reader allows about 1,000).
MAX_DEPTH = 32
#: Integers must fit a signed 64-bit integer: what SQL columns and most JSON readers keep exactly.
INT_LIMIT = 2**63


class FrozenDict(dict[str, Any]):
    """A read-only ``dict`` holding checked JSON (see the module docstring)."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an archived message is read-only: build a new Message to change its meta or tool calls")

    __setitem__ = __delitem__ = __ior__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def __reduce__(self) -> tuple[type[FrozenDict], tuple[dict[str, Any]]]:
        return FrozenDict, (dict(self),)


class FrozenList(list[Any]):
    """A read-only ``list`` holding checked JSON (see the module docstring)."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("an archived message is read-only: build a new Message to change its meta")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _read_only
    append = clear = extend = insert = pop = remove = reverse = sort = _read_only

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def __reduce__(self) -> tuple[type[FrozenList], tuple[list[Any]]]:
        return FrozenList, (list(self),)


#: The meta of a message that has none (shared: it cannot change).
EMPTY = FrozenDict()


def check_text(value: object, what: str) -> str:
    """``value`` when it is text every store and backend takes; ``TypeError``/``ValueError`` otherwise."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be str, not {type(value).__name__}")
    if type(value) is not str:
        value = str(value)  # a str subclass: keep the plain text only
    problem = _text_problem(value)
    if problem:
        raise ValueError(f"{what} {problem}")
    return value


def _text_problem(text: str) -> str:
    """What makes ``text`` unstorable, in words, or ``""``."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return (
                f"holds a lone surrogate (U+{ord(text[exc.start]):04X} at index {exc.start}), which no store "
                "or backend takes: decode bytes with errors='replace', not 'surrogateescape'"
            )
    return ""


class _Invalid(Exception):
    """A JSON value that is not storable; ``path`` grows as it leaves the containers that hold it."""

    def __init__(self, error: type[Exception], problem: str) -> None:
        super().__init__(problem)
        self.error, self.problem, self.path = error, problem, ""


def frozen(value: Any, what: str) -> Any:
    """A checked, read-only copy of the JSON ``value``; ``TypeError``/``ValueError`` saying where it is wrong."""
    try:
        return _frozen(value, 0)
    except _Invalid as invalid:
        raise invalid.error(f"{what}{invalid.path} {invalid.problem}") from None


def _frozen(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if value.isascii() or not _text_problem(value):
            return value
        raise _Invalid(ValueError, _text_problem(value))
    if kind is FrozenDict or kind is FrozenList or value is None or kind is bool:
        return value
    if kind is int:
        if not -INT_LIMIT <= value < INT_LIMIT:
            raise _Invalid(ValueError, "is an integer beyond 64 bits; store such a number as a string")
        return value
    if kind is float:
        if not math.isfinite(value):
            raise _Invalid(ValueError, f"is {value}, which JSON cannot hold; use null or a string")
        return value
    if depth >= MAX_DEPTH:
        raise _Invalid(ValueError, f"nests deeper than {MAX_DEPTH} levels (or refers to itself)")
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if type(key) is not str:
                raise _Invalid(TypeError, f"has a key {key!r} that is not a str (JSON keys are strings)")
            if not key.isascii() and _text_problem(key):
                raise _Invalid(ValueError, f"has a key that {_text_problem(key)}")
            try:
                items.append((key, _frozen(item, depth + 1)))
            except _Invalid as invalid:
                invalid.path = f"[{key!r}]{invalid.path}"
                raise
        return FrozenDict(items)
    if isinstance(value, (list, tuple)):
        checked = []
        for index, item in enumerate(value):
            try:
                checked.append(_frozen(item, depth + 1))
            except _Invalid as invalid:
                invalid.path = f"[{index}]{invalid.path}"
                raise
        return FrozenList(checked)
    if isinstance(value, (int, float)):  # an int or float subclass (IntEnum...): its plain number
        return _frozen(int(value) if isinstance(value, int) else float(value), depth)
    raise _Invalid(
        TypeError,
        f"is a {kind.__name__}; message meta must be JSON-serialisable: "
        "str, int, float, bool, None, lists and dicts with str keys",
    )


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def _frozen_list(items: list[Any]) -> FrozenList:
    """A fresh decoded list, frozen with the lists it holds (the objects in it are frozen already)."""
    for index, item in enumerate(items):
        if type(item) is list:
            items[index] = _frozen_list(item)
    return FrozenList(items)


def _frozen_object(pairs: list[tuple[str, Any]]) -> FrozenDict:
    """A decoded object with lists, frozen with them: the decoder builds inner values first."""
    for index, (key, item) in enumerate(pairs):
        if type(item) is list:
            pairs[index] = (key, _frozen_list(item))
    return FrozenDict(pairs)


#: Objects without lists need only the C-level FrozenDict hook; text with a ``[`` takes the one that freezes lists.
_decode = json.JSONDecoder(object_pairs_hook=FrozenDict, parse_constant=_refuse_constant).raw_decode
_decode_lists = json.JSONDecoder(object_pairs_hook=_frozen_object, parse_constant=_refuse_constant).raw_decode


def loads_frozen(text: str) -> Any:
    """JSON text a store wrote itself (already checked), decoded straight into frozen values.

    Raises ``ValueError`` for text that is not one JSON value.
    """
    lists = "[" in text
    value, end = (_decode_lists if lists else _decode)(text)
    if end != len(text):
        raise ValueError(f"not one JSON value: {text[:60]!r}")
    return _frozen_list(value) if lists and type(value) is list else value
