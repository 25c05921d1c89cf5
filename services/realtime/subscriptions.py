"""Per-client filters and bounded queues of the live tail.

The reader fans every event out with :meth:`LiveClient.push`, which is O(1),
synchronous and never waits for a client: when a client's queue is full the
oldest queued event is dropped and counted. Each client's own sender task
drains its queue (see ``services.realtime.live``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.realtime.buffer import BufferedEvent
from shared.internal import Principal
from shared.querylang import compile_matcher, parse

EventMatcher = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Filter:
    """What one client wants to see; a tenant restriction always applies."""

    levels: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()
    query: EventMatcher | None = None
    tenant_id: str | None = None

    @property
    def matches_everything(self) -> bool:
        """True when no condition applies (the reader's fast path)."""
        return not self.levels and not self.services and self.query is None and self.tenant_id is None

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether the wire-shape ``event`` passes every condition."""
        if self.tenant_id is not None and event.get("tenant_id") != self.tenant_id:
            return False
        if self.levels and event.get("level") not in self.levels:
            return False
        if self.services and event.get("service") not in self.services:
            return False
        return self.query is None or self.query(event)

    def matches_buffered(self, item: BufferedEvent) -> bool:
        """:meth:`matches` for a buffered event (a predicate for the ring buffer)."""
        return self.matches(item.event)


def build_filter(*, levels: list[str], services: list[str], q: str, tenant_id: str | None) -> Filter:
    """Compile a subscription; raises QuerySyntaxError (bad ``q``) or ValueError (unsupported field)."""
    query: EventMatcher | None = None
    if q.strip():
        query = compile_matcher(parse(q))
    return Filter(levels=frozenset(levels), services=frozenset(services), query=query, tenant_id=tenant_id)


@dataclass(eq=False)
class LiveClient:
    """One connected Socket.IO client of the ``/live`` namespace."""

    sid: str
    principal: Principal
    queue_size: int
    batch_size: int
    filter: Filter | None = None  # None until the first subscribe: nothing is queued before
    queue: deque[BufferedEvent] = field(init=False)
    backfill: list[BufferedEvent] = field(default_factory=list)
    dropped: int = 0
    has_data: asyncio.Event = field(default_factory=asyncio.Event)
    batch_ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False
    generation: int = 0  # bumped by every subscribe, so a sender can tell its work went stale

    def __post_init__(self) -> None:
        self.queue = deque(maxlen=self.queue_size)

    def push(self, item: BufferedEvent) -> None:
        """Queue one event for this client; drops (and counts) the oldest when full. Never blocks."""
        queue = self.queue
        if len(queue) == self.queue_size:
            self.dropped += 1  # the deque's maxlen evicts the oldest on append
        queue.append(item)
        if not self.has_data.is_set():
            self.has_data.set()
        if len(queue) >= self.batch_size and not self.batch_ready.is_set():
            self.batch_ready.set()

    def resubscribe(self, new_filter: Filter, backfill: list[BufferedEvent]) -> None:
        """Install a new filter: events queued under the old one are discarded, backfill goes first."""
        self.filter = new_filter
        self.generation += 1
        self.queue.clear()
        self.dropped = 0
        self.batch_ready.clear()
        self.backfill = backfill
        if backfill:
            self.has_data.set()
        else:
            self.has_data.clear()

    def take(self, limit: int) -> list[BufferedEvent]:
        """Remove and return up to ``limit`` of the oldest queued events."""
        queue = self.queue
        count = min(limit, len(queue))
        batch = [queue.popleft() for _ in range(count)]
        self._settle_events()
        return batch

    def take_backfill(self) -> list[BufferedEvent]:
        """Remove and return the pending backfill."""
        backfill, self.backfill = self.backfill, []
        self._settle_events()
        return backfill

    def take_dropped(self) -> int:
        """How many events were dropped since the last call (and reset the count)."""
        dropped, self.dropped = self.dropped, 0
        return dropped

    def _settle_events(self) -> None:
        if len(self.queue) < self.batch_size:
            self.batch_ready.clear()
        if not self.queue and not self.backfill and not self.dropped:
            self.has_data.clear()


class Registry:
    """Every connected client of this replica, by Socket.IO sid."""

    def __init__(self) -> None:
        self._clients: dict[str, LiveClient] = {}

    def __len__(self) -> int:
        return len(self._clients)

    def add(self, client: LiveClient) -> None:
        """Register a connected client."""
        self._clients[client.sid] = client

    def remove(self, sid: str) -> LiveClient | None:
        """Forget a client; returns it when it was known."""
        return self._clients.pop(sid, None)

    def get(self, sid: str) -> LiveClient | None:
        """The client with this sid, if connected."""
        return self._clients.get(sid)

    def dropping(self) -> int:
        """Clients that dropped events not yet reported to them (they are falling behind now)."""
        return sum(1 for client in self._clients.values() if client.dropped)

    def fan_out(self, item: BufferedEvent) -> None:
        """Queue ``item`` for every subscribed client whose filter matches (synchronous, O(clients))."""
        event = item.event
        for client in self._clients.values():
            flt = client.filter
            if flt is None:
                continue
            if flt.matches_everything or flt.matches(event):
                client.push(item)
