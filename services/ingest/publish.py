"""Publishing batches to the stream, and the backlog gate every input consults first."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Final

from opentelemetry import trace
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.bus import STREAM, backlog, encode_entry
from shared.metrics import BACKPRESSURE, INGESTED_EVENTS, PUBLISH_LATENCY
from shared.models import LogEvent
from shared.telemetry import current_traceparent

log = logging.getLogger(__name__)
tracer = trace.get_tracer("logwarden.ingest")

# Serialising a big batch takes milliseconds: do it off the loop; tiny batches are cheaper inline.
_ENCODE_INLINE_MAX: Final = 32


class PublishError(Exception):
    """The stream could not take a batch (Redis down or refusing writes)."""


class Publisher:
    """Splits events into stream entries of ``batch_size`` and XADDs them, one span per entry."""

    def __init__(self, redis: Redis, *, batch_size: int, stream: str = STREAM) -> None:
        self._redis = redis
        self.batch_size = batch_size
        self.stream = stream

    async def publish(self, events: Sequence[LogEvent], *, input_name: str, fmt: str) -> int:
        """Publish ``events`` in batches; returns how many entries were added. Raises PublishError."""
        entries = 0
        for start in range(0, len(events), self.batch_size):
            await self._publish_batch(events[start : start + self.batch_size])
            entries += 1
        if events:
            INGESTED_EVENTS.labels(input_name, fmt).inc(len(events))
        return entries

    async def _publish_batch(self, batch: Sequence[LogEvent]) -> None:
        with tracer.start_as_current_span(
            "publish",
            kind=trace.SpanKind.PRODUCER,
            attributes={
                "messaging.system": "redis",
                "messaging.destination.name": self.stream,
                "messaging.batch.message_count": len(batch),
            },
        ) as span:
            # The traceparent names this span, so the indexer's work hangs under the publish.
            traceparent = current_traceparent()
            if len(batch) > _ENCODE_INLINE_MAX:
                fields = await asyncio.to_thread(encode_entry, batch, traceparent=traceparent)
            else:
                fields = encode_entry(batch, traceparent=traceparent)
            started = time.perf_counter()
            try:
                await self._redis.xadd(self.stream, fields)  # type: ignore[arg-type]
            except RedisError as exc:
                span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
                raise PublishError(f"the event stream is unavailable ({type(exc).__name__})") from exc
            finally:
                PUBLISH_LATENCY.observe(time.perf_counter() - started)


class BacklogGate:
    """Is the indexer's unacknowledged backlog over the limit? Cached briefly to spare Redis."""

    def __init__(
        self,
        redis: Redis,
        *,
        group: str,
        limit: int,
        ttl: float = 0.25,
        poll_interval: float = 0.1,
        stream: str = STREAM,
    ) -> None:
        self._redis = redis
        self._group = group
        self.limit = limit
        self._ttl = ttl
        self.poll_interval = poll_interval
        self._stream = stream
        self._value = 0
        self._checked = float("-inf")
        self._lock = asyncio.Lock()
        self._refresh_task: asyncio.Task[int] | None = None

    async def backlog(self) -> int:
        """The backlog, at most ``ttl`` seconds old."""
        if time.monotonic() - self._checked < self._ttl:
            return self._value
        async with self._lock:
            if time.monotonic() - self._checked < self._ttl:
                return self._value
            try:
                self._value = await backlog(self._redis, stream=self._stream, group=self._group)
            except RedisError as exc:
                # Fail open: publishing will fail loudly on its own if Redis is really gone.
                log.warning("cannot read the stream backlog: %s", type(exc).__name__)
            self._checked = time.monotonic()
        return self._value

    async def over_limit(self) -> bool:
        """True when inputs must push back."""
        return await self.backlog() > self.limit

    def over_limit_nowait(self) -> bool:
        """The last known answer, refreshing in the background when stale (for UDP callbacks)."""
        stale = time.monotonic() - self._checked >= self._ttl
        if stale and (self._refresh_task is None or self._refresh_task.done()):
            self._refresh_task = asyncio.get_running_loop().create_task(self.backlog())
        return self._value > self.limit

    async def wait_below(self, *, input_name: str) -> bool:
        """Return once the backlog is under the limit; True when it had to wait (counted once)."""
        if not await self.over_limit():
            return False
        BACKPRESSURE.labels(input_name).inc()
        # Polling, not an Event: the backlog drains in another process (the indexer).
        while await self.over_limit():  # noqa: ASYNC110
            await asyncio.sleep(self.poll_interval)
        return True

    async def close(self) -> None:
        """Cancel a background refresh still running."""
        if self._refresh_task is not None and not self._refresh_task.done():
            self._refresh_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError):
                await self._refresh_task
