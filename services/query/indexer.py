"""The indexer: stream entries -> LogStore, acknowledged only after a durable write.

One :class:`Indexer` runs inside the query service's lifespan. Besides the
consumer loop it runs three periodic jobs: consumer-lag metrics (every 2 s),
stream trimming (every 10 s) and retention (at start, hourly and when the
retention setting changes); all of them stop with the service.

File status rule (docs/architecture.md, "Indexing and file status"): while
ingest parses an upload (status ``processing``) it keeps ``records_count``
strictly above the number of events it has published, and writes the exact
final count before its last XADD. So ``indexed_count >= records_count`` (with
``records_count > 0``) can only hold once every event of the file is indexed;
the indexer, after adding a batch's events to ``indexed_count``, is the one
that then sets ``indexed``. A redelivered entry may have been counted before a
crash, so for it the count is recomputed from the store instead of added.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from opentelemetry import trace
from redis.asyncio import Redis

from services.query.cache import bump_generation
from shared import bus
from shared.health import CheckResult
from shared.metrics import CONSUMER_LAG, DEAD_LETTERED, INDEX_BATCH_LATENCY, INDEXED_EVENTS, OLDEST_PENDING_AGE
from shared.models import LogEvent
from shared.settings import Settings
from shared.store.base import Filters, LogStore, MetaStore, SearchRequest
from shared.telemetry import context_from_traceparent, span_link

UPLOAD_PREFIX: Final = "upload:"
RETENTION_SETTING: Final = "retention_days"
# Sources deleted through /internal/sources are remembered this long so events of
# a deleted file still in the stream are dropped instead of resurrecting it.
TOMBSTONE_PREFIX: Final = "logwarden:query:deleted-source:"
TOMBSTONE_SECONDS: Final = 7 * 86_400
METRICS_EVERY: Final = 2.0
TRIM_EVERY: Final = 10.0
RETENTION_EVERY: Final = 3600.0

log = logging.getLogger(__name__)
tracer = trace.get_tracer("logwarden.query.indexer")


def consumer_name(settings: Settings) -> str:
    """Stable per host and port, so a restarted process drains its own pending entries first."""
    return f"query-{socket.gethostname()}-{settings.query_port}"


async def effective_retention_days(*, meta: MetaStore, settings: Settings) -> int:
    """The runtime ``retention_days`` setting, else ``LOGWARDEN_RETENTION_DAYS``."""
    value = await meta.get_setting(RETENTION_SETTING)
    return int(value) if isinstance(value, int) and value > 0 else settings.retention_days


async def tombstone_source(redis: Redis, source: str) -> None:
    """Remember that an upload's events were deleted (ignored for other sources)."""
    if source.startswith(UPLOAD_PREFIX):
        await redis.set(TOMBSTONE_PREFIX + source, "1", ex=TOMBSTONE_SECONDS)


class Indexer:
    """Consumer group reader that writes batches to the LogStore, plus its periodic jobs."""

    def __init__(self, *, settings: Settings, redis: Redis, store: LogStore, meta: MetaStore) -> None:
        self._settings = settings
        self._redis = redis
        self._store = store
        self._meta = meta
        self.consumer = bus.StreamConsumer(
            redis,
            self.handle,
            group=settings.consumer_group,
            consumer=consumer_name(settings),
            claim_idle_ms=settings.claim_idle_ms,
            max_deliveries=settings.max_deliveries,
            on_dead_letter=self._on_dead_letter,
        )
        self._stop = asyncio.Event()
        self._retention_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.indexed_events = 0
        self._busy = False

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer and the periodic jobs as background tasks."""
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self.consumer.run(self._stop), name="indexer-consumer"),
            asyncio.create_task(self._every(METRICS_EVERY, self.update_lag_metrics), name="indexer-metrics"),
            asyncio.create_task(self._every(TRIM_EVERY, self.trim_stream), name="indexer-trim"),
            asyncio.create_task(self._retention_loop(), name="indexer-retention"),
        ]

    async def stop(self) -> None:
        """Let the consumer finish a batch it is writing, then stop every task."""
        self._stop.set()
        if not self._tasks:
            return
        consumer = self._tasks[0]
        deadline = time.monotonic() + 10
        while not consumer.done() and time.monotonic() < deadline:
            if not self._busy:
                # Blocked in XREADGROUP: cancelling is safe, as anything read but not yet
                # written stays pending and is redelivered; waiting would cost up to block_ms.
                # Repeated because the Redis client can absorb a cancellation mid-command.
                consumer.cancel()
            await asyncio.wait([consumer], timeout=0.05)
        _, pending = await asyncio.wait(self._tasks, timeout=max(0.0, deadline - time.monotonic()))
        for task in pending:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []

    def request_retention(self) -> None:
        """Run retention soon (after the setting changed)."""
        self._retention_now.set()

    async def health(self) -> CheckResult:
        """Unhealthy when the consumer task died; details: backlog and counters."""
        consumer_task = self._tasks[0] if self._tasks else None
        details: dict[str, object] = {
            "backlog": await bus.backlog(self._redis, group=self._settings.consumer_group),
            "indexed_events": self.indexed_events,
            "handled_entries": self.consumer.stats.handled_entries,
            "failed_batches": self.consumer.stats.failed_batches,
            "dead_lettered": self.consumer.stats.dead_lettered,
        }
        if consumer_task is None or consumer_task.done():
            return CheckResult("unhealthy", details={**details, "error": "indexer is not running"})
        return CheckResult("healthy", details=details)

    # -- the handler ------------------------------------------------------------------------

    async def handle(self, entries: list[bus.StreamEntry]) -> None:
        """Write every event of ``entries`` in one durable write; the consumer acks after we return."""
        links = [link for link in (span_link(e.traceparent) for e in entries) if link is not None]
        if len(entries) == 1 and entries[0].traceparent:
            # One entry: a child of the publishing request, so the trace reads as one chain.
            span_cm = tracer.start_as_current_span(
                "index batch", context=context_from_traceparent(entries[0].traceparent)
            )
        else:
            span_cm = tracer.start_as_current_span("index batch", links=links)
        self._busy = True
        try:
            with span_cm as span:
                await self._write_entries(entries, span)
        finally:
            self._busy = False

    async def _write_entries(self, entries: list[bus.StreamEntry], span: trace.Span) -> None:
        events = [event for entry in entries for event in entry.events]
        events = await self._drop_deleted_sources(events)
        span.set_attribute("logwarden.entries", len(entries))
        span.set_attribute("logwarden.events", len(events))
        started = time.perf_counter()
        await self._store.write(events)
        INDEX_BATCH_LATENCY.observe(time.perf_counter() - started)
        INDEXED_EVENTS.inc(len(events))
        self.indexed_events += len(events)
        # Only after the write is durable: the generation bump makes cached answers stale.
        await bump_generation(self._redis)
        await self._count_file_events(entries)

    async def _drop_deleted_sources(self, events: list[LogEvent]) -> list[LogEvent]:
        sources = sorted({e.source for e in events if e.source.startswith(UPLOAD_PREFIX)})
        if not sources:
            return events
        flags = await self._redis.mget([TOMBSTONE_PREFIX + s for s in sources])
        deleted = {s for s, flag in zip(sources, flags, strict=True) if flag is not None}
        return [e for e in events if e.source not in deleted] if deleted else events

    async def _count_file_events(self, entries: list[bus.StreamEntry]) -> None:
        counts: Counter[str] = Counter()
        redelivered: set[str] = set()
        for entry in entries:
            for event in entry.events:
                if event.source.startswith(UPLOAD_PREFIX):
                    counts[event.source[len(UPLOAD_PREFIX) :]] += 1
                    if entry.deliveries > 1:
                        redelivered.add(event.source[len(UPLOAD_PREFIX) :])
        for file_id, added in counts.items():
            if file_id in redelivered:
                # A redelivered entry may already have been counted before a crash:
                # recount from the store (the truth) instead of adding again.
                result = await self._store.search(
                    SearchRequest(filters=Filters(sources=(UPLOAD_PREFIX + file_id,)), limit=1, highlight=False)
                )
                record = await self._meta.update_file(file_id, indexed_count=result.total)
            else:
                record = await self._meta.increment_file_counts(file_id, indexed=added)
            if (
                record is not None
                and record.status == "processing"
                and record.records_count > 0
                and record.indexed_count >= record.records_count
            ):
                await self._meta.update_file(file_id, status="indexed")

    def _on_dead_letter(self, entry: bus.StreamEntry | None, reason: str) -> None:
        DEAD_LETTERED.inc()
        log.error("indexer dead-lettered %s: %s", entry.entry_id if entry else "an undecodable entry", reason)

    # -- periodic jobs ----------------------------------------------------------------------

    async def _every(self, seconds: float, job: Callable[[], Awaitable[object]]) -> None:
        while not self._stop.is_set():
            try:
                await job()
            except Exception:  # a periodic job must survive Redis or store hiccups
                log.exception("indexer job %s failed", getattr(job, "__name__", job))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    async def update_lag_metrics(self) -> None:
        """Set CONSUMER_LAG and OLDEST_PENDING_AGE from the stream."""
        group = self._settings.consumer_group
        CONSUMER_LAG.set(await bus.backlog(self._redis, group=group))
        OLDEST_PENDING_AGE.set(await bus.oldest_pending_age_seconds(self._redis, group=group))

    async def trim_stream(self) -> int:
        """Cap the stream (never past pending or undelivered entries)."""
        return await bus.trim(self._redis, maxlen=self._settings.stream_maxlen)

    async def _retention_loop(self) -> None:
        while not self._stop.is_set():
            try:
                await self.apply_retention()
            except Exception:
                log.exception("retention failed")
            self._retention_now.clear()
            waiters = [asyncio.ensure_future(self._stop.wait()), asyncio.ensure_future(self._retention_now.wait())]
            try:
                await asyncio.wait(waiters, timeout=RETENTION_EVERY, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def apply_retention(self) -> int:
        """Delete events older than the retention period; returns how many went."""
        days = await effective_retention_days(meta=self._meta, settings=self._settings)
        deleted = await self._store.delete_older_than(datetime.now(UTC) - timedelta(days=days))
        if deleted:
            await bump_generation(self._redis)
            log.info("retention removed %d events older than %d days", deleted, days)
        return deleted
