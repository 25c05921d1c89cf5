"""The in-memory ring buffer of recent events, for backfill and reconnect resume.

Every buffered event keeps its stream position ``(entry ms, entry seq, index in
the entry)``. Ordering is by that position, never by the event's ULID: ULIDs are
only monotonic within one ingest batch, while the stream order is the order in
which every replica saw the events.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Position = tuple[int, int, int]


def stream_position(entry_id: str, index: int) -> Position:
    """The total order of an event: its stream entry id, then its index in the entry."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0), index


@dataclass(frozen=True, slots=True)
class BufferedEvent:
    """One event as the live tail holds it: wire-shape dict plus provenance."""

    position: Position
    event: dict[str, Any]
    published_ms: int
    raw: bytes = b""  # the event's JSON, encoded once and shared by every client's batch

    @property
    def id(self) -> str:
        """The event's ULID (what clients send back as ``last_id``)."""
        return str(self.event.get("id", ""))


class RecentEvents:
    """A bounded deque of the newest events in stream order (oldest fall off)."""

    def __init__(self, size: int) -> None:
        self._events: deque[BufferedEvent] = deque(maxlen=size)

    def __len__(self) -> int:
        return len(self._events)

    def __iter__(self) -> Iterator[BufferedEvent]:
        return iter(self._events)

    def append(self, item: BufferedEvent) -> None:
        """Add the newest event (the reader appends in stream order)."""
        self._events.append(item)

    def last_matching(self, predicate: Callable[[BufferedEvent], bool], limit: int) -> list[BufferedEvent]:
        """Up to ``limit`` newest events satisfying ``predicate``, oldest first."""
        found: list[BufferedEvent] = []
        if limit <= 0:
            return found
        for item in reversed(self._events):
            if predicate(item):
                found.append(item)
                if len(found) >= limit:
                    break
        found.reverse()
        return found

    def after(self, event_id: str, predicate: Callable[[BufferedEvent], bool]) -> list[BufferedEvent] | None:
        """Every event after the one with ``event_id`` that satisfies ``predicate``, oldest first.

        None when ``event_id`` is no longer (or never was) in the buffer: the
        caller cannot resume without a gap and must say so.
        """
        matched: list[BufferedEvent] = []
        for item in reversed(self._events):
            if item.id == event_id:
                matched.reverse()
                return matched
            if predicate(item):
                matched.append(item)
        return None
