"""Server-sent events, decoded one line at a time as they arrive."""

from __future__ import annotations

from dataclasses import dataclass

from ._parse import Malformed


@dataclass(frozen=True, slots=True)
class Event:
    """One server-sent event: its ``event`` type (``"message"`` when unnamed) and ``data``."""

    event: str
    data: str


class SSEDecoder:
    """Turns the lines of an event stream into :class:`Event` objects, incrementally.

    Feed each line (without its line ending) to :meth:`feed`; a blank line ends an
    event, which ``feed`` then returns. Comments (``:``) are skipped; ``id`` and
    ``retry`` fields are ignored (a chat reply is never resumed). A line with no field
    a chat server would send raises ``Malformed`` (a ``ValueError``).
    """

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = Event(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        field, colon, value = line.partition(":")
        if not colon:
            raise Malformed(f"malformed event-stream line {line[:80]!r}")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        elif field not in ("id", "retry"):
            raise Malformed(f"malformed event-stream line {line[:80]!r}")
        return None

    def pending(self) -> bool:
        """Whether a started event is still waiting for its blank line."""
        return bool(self._data or self._event)
