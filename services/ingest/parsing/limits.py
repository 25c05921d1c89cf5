"""Limits applied while parsing, and the errors the parsing core raises."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Bounds that keep one hostile or broken input from exhausting the ingest worker."""

    max_line_bytes: int = 65536
    max_json_depth: int = 32
    max_fields_per_event: int = 256
    naive_timezone: str = "UTC"
    # A multi-line event (stack trace) may grow to this many times max_line_bytes;
    # beyond that further continuation lines are dropped and the event is marked truncated.
    multiline_factor: int = 4

    @classmethod
    def from_settings(cls, settings: Any) -> ParseLimits:
        """Take the ingest limits from a ``shared.settings.Settings`` instance."""
        return cls(
            max_line_bytes=settings.max_line_bytes,
            max_json_depth=settings.max_json_depth,
            max_fields_per_event=settings.max_fields_per_event,
            naive_timezone=settings.naive_timezone,
        )

    @property
    def max_event_bytes(self) -> int:
        """Upper bound on a joined multi-line message or a JSON array element."""
        return self.max_line_bytes * self.multiline_factor


class RecordError(ValueError):
    """One record cannot become an event; ``reason`` is safe to show to the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotALogError(ValueError):
    """The whole input is not a log (binary, compressed, image...); nothing was parsed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
