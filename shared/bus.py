"""The Redis stream bus between ingest, the indexer and the live tail.

One stream entry carries a batch of events (orjson array), the W3C
``traceparent`` of the request that produced it and the publish time. The
indexer consumes with a consumer group and acknowledges only after its handler
succeeded; the live tail reads from ``$`` without a group (every replica sees
every entry). Trimming never removes an entry a group has not acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.models import LogEvent, dumps_events, loads_events

STREAM: Final = "logwarden:logs"
DEAD_STREAM: Final = "logwarden:logs:dead"
DEAD_STREAM_MAXLEN: Final = 100_000
_TRIM_SCAN_LIMIT: Final = 10_000

log = logging.getLogger(__name__)


class EntryDecodeError(ValueError):
    """A stream entry that is not a batch of valid events (poison: never retried)."""


@dataclass(slots=True)
class StreamEntry:
    """One decoded stream entry: a batch of events and its provenance."""

    entry_id: str
    events: list[LogEvent]
    traceparent: str | None = None
    published_ms: int = 0
    deliveries: int = 1
    fields: dict[str, bytes] = field(default_factory=dict, repr=False)


def _text(value: bytes | str | None) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else value


def encode_entry(events: Sequence[LogEvent], *, traceparent: str | None) -> dict[str, bytes | str | int]:
    """Stream fields for a batch of events."""
    fields: dict[str, bytes | str | int] = {
        "events": dumps_events(events),
        "count": len(events),
        "published_ms": int(time.time() * 1000),
    }
    if traceparent:
        fields["traceparent"] = traceparent
    return fields


def decode_entry(entry_id: bytes | str, raw: dict[Any, Any]) -> StreamEntry:
    """Decode stream fields into a StreamEntry; EntryDecodeError when they are not ours."""
    fields = {(_text(k) or ""): v for k, v in raw.items()}
    payload = fields.get("events")
    if payload is None:
        raise EntryDecodeError("entry has no 'events' field")
    try:
        events = loads_events(payload)
    except Exception as exc:
        raise EntryDecodeError(f"events are not valid: {type(exc).__name__}: {str(exc)[:200]}") from exc
    published = _text(fields.get("published_ms")) or "0"
    return StreamEntry(
        entry_id=_text(entry_id) or "",
        events=events,
        traceparent=_text(fields.get("traceparent")),
        published_ms=int(published) if published.isdigit() else 0,
        fields=fields,
    )


async def publish(
    redis: Redis,
    events: Sequence[LogEvent],
    *,
    traceparent: str | None = None,
    stream: str = STREAM,
) -> str:
    """Append one batch of events as one stream entry; returns the entry id."""
    entry_id = await redis.xadd(stream, encode_entry(events, traceparent=traceparent))  # type: ignore[arg-type]
    return _text(entry_id) or ""


async def ensure_group(redis: Redis, *, stream: str = STREAM, group: str) -> None:
    """Create the consumer group (and the stream) if missing; reading starts at the beginning."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


async def backlog(redis: Redis, *, stream: str = STREAM, group: str) -> int:
    """Entries the group has not acknowledged yet (never delivered + pending)."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        return 0  # no stream yet
    for info in groups:
        if _text(info.get("name")) == group:
            lag = info.get("lag")
            pending = int(info.get("pending") or 0)
            if lag is None:  # Redis cannot tell after deletions inside the range: be conservative
                return int(await redis.xlen(stream))
            return int(lag) + pending
    return int(await redis.xlen(stream))


async def oldest_pending_age_seconds(redis: Redis, *, stream: str = STREAM, group: str) -> float:
    """Age of the oldest delivered-but-unacknowledged entry (0 when none)."""
    try:
        summary = await redis.xpending(stream, group)
    except ResponseError:
        return 0.0
    if not summary or not summary.get("pending"):
        return 0.0
    oldest = _text(summary.get("min")) or "0-0"
    return max(0.0, time.time() - int(oldest.split("-")[0]) / 1000)


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _next_id(entry_id: str) -> str:
    ms, seq = _id_tuple(entry_id)
    return f"{ms}-{seq + 1}"


async def trim(redis: Redis, *, stream: str = STREAM, maxlen: int) -> int:
    """Cap the stream near ``maxlen`` entries without dropping any entry a group still needs.

    The cut point is the older of "first entry past the cap" and, for every
    consumer group, its oldest pending entry or the first entry it has not yet
    been delivered. Returns how many entries were removed.
    """
    length = int(await redis.xlen(stream))
    excess = length - maxlen
    if excess <= 0:
        return 0
    head = await redis.xrange(stream, "-", "+", count=min(excess, _TRIM_SCAN_LIMIT))
    if not head:
        return 0
    boundary = _next_id(_text(head[-1][0]) or "0-0")
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError:
        groups = []
    for info in groups:
        name = _text(info.get("name")) or ""
        limit = _next_id(_text(info.get("last-delivered-id")) or "0-0")
        if int(info.get("pending") or 0):
            summary = await redis.xpending(stream, name)
            limit = min(limit, _text(summary.get("min")) or limit, key=_id_tuple)
        boundary = min(boundary, limit, key=_id_tuple)
    removed = await redis.xtrim(stream, minid=boundary, approximate=False)
    return int(removed)


Handler = Callable[[list[StreamEntry]], Awaitable[None]]


@dataclass(slots=True)
class ConsumerStats:
    """Counters a consumer keeps for metrics and tests."""

    handled_entries: int = 0
    failed_batches: int = 0
    reclaimed_entries: int = 0
    dead_lettered: int = 0


class StreamConsumer:
    """Reads a stream with a consumer group and acknowledges after the handler succeeds.

    The handler gets a list of entries; if it raises, each entry is retried on
    its own so one poison entry cannot hold back its neighbours. Entries that
    stay unacknowledged longer than ``claim_idle_ms`` (a crashed consumer) are
    taken over with XAUTOCLAIM; past ``max_deliveries`` they go to the
    dead-letter stream with the reason and are acknowledged.
    """

    def __init__(
        self,
        redis: Redis,
        handler: Handler,
        *,
        group: str,
        consumer: str,
        stream: str = STREAM,
        dead_stream: str = DEAD_STREAM,
        count: int = 20,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 5,
        on_dead_letter: Callable[[StreamEntry | None, str], None] | None = None,
    ) -> None:
        self._redis = redis
        self._handler = handler
        self.group = group
        self.consumer = consumer
        self.stream = stream
        self.dead_stream = dead_stream
        self._count = count
        self._block_ms = block_ms
        self._claim_idle_ms = claim_idle_ms
        self._max_deliveries = max_deliveries
        self._on_dead_letter = on_dead_letter
        self._last_errors: dict[str, str] = {}
        self.stats = ConsumerStats()

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set: own pending entries first, then new ones."""
        await ensure_group(self._redis, stream=self.stream, group=self.group)
        await self._drain_own_pending()
        next_claim = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() >= next_claim:
                    await self.reclaim()
                    next_claim = time.monotonic() + max(self._claim_idle_ms / 2000, 0.05)
                await self.read_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # Redis hiccup: log, back off, go on
                log.exception("stream consumer loop error")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 1.0)

    async def read_once(self, *, block_ms: int | None = None) -> int:
        """Read and handle one batch of new entries; returns how many entries were read."""
        block = self._block_ms if block_ms is None else block_ms
        response: Any = await self._redis.xreadgroup(
            self.group, self.consumer, {self.stream: ">"}, count=self._count, block=block
        )
        raw_entries = [entry for _, entries in response or [] for entry in entries]
        await self._handle_raw(raw_entries, deliveries={})
        return len(raw_entries)

    async def _drain_own_pending(self) -> None:
        # Entries this consumer name received before a crash or restart.
        while True:
            response: Any = await self._redis.xreadgroup(
                self.group, self.consumer, {self.stream: "0"}, count=self._count
            )
            raw_entries = [e for _, entries in response or [] for e in entries if e[1]]
            if not raw_entries:
                return
            deliveries = await self._delivery_counts([_text(e[0]) or "" for e in raw_entries])
            await self._handle_raw(raw_entries, deliveries=deliveries)
            if any(self._is_failed(_text(e[0]) or "") for e in raw_entries):
                return  # leave failing entries to the reclaim cycle

    def _is_failed(self, entry_id: str) -> bool:
        return entry_id in self._last_errors

    async def reclaim(self) -> int:
        """Take over entries idle past ``claim_idle_ms`` and handle them; returns how many."""
        start = "0-0"
        total = 0
        while True:
            result: Any = await self._redis.xautoclaim(
                self.stream, self.group, self.consumer, self._claim_idle_ms, start_id=start, count=self._count
            )
            start = _text(result[0]) or "0-0"
            raw_entries = [e for e in result[1] if e and e[1]]
            deleted = result[2] if len(result) > 2 else []
            if deleted:  # trimmed away while pending: nothing left to deliver
                await self._redis.xack(self.stream, self.group, *deleted)
            if raw_entries:
                total += len(raw_entries)
                self.stats.reclaimed_entries += len(raw_entries)
                deliveries = await self._delivery_counts([_text(e[0]) or "" for e in raw_entries])
                await self._handle_raw(raw_entries, deliveries=deliveries)
            if start == "0-0":
                return total

    async def _delivery_counts(self, entry_ids: list[str]) -> dict[str, int]:
        if not entry_ids:
            return {}
        low = min(entry_ids, key=_id_tuple)
        high = max(entry_ids, key=_id_tuple)
        rows: Any = await self._redis.xpending_range(
            self.stream, self.group, min=low, max=high, count=len(entry_ids) * 4 + 10
        )
        wanted = set(entry_ids)
        return {
            _text(r["message_id"]) or "": int(r["times_delivered"]) for r in rows if _text(r["message_id"]) in wanted
        }

    async def _handle_raw(self, raw_entries: list[Any], *, deliveries: dict[str, int]) -> None:
        entries: list[StreamEntry] = []
        for raw_id, raw_fields in raw_entries:
            entry_id = _text(raw_id) or ""
            times = deliveries.get(entry_id, 1)
            try:
                entry = decode_entry(entry_id, raw_fields)
            except EntryDecodeError as exc:
                await self._dead_letter(entry_id, raw_fields, f"undecodable entry: {exc}", times, None)
                continue
            entry.deliveries = times
            if times > self._max_deliveries:
                last = self._last_errors.get(entry_id, "no acknowledgement (consumer crashed or timed out)")
                reason = f"failed {times - 1} deliveries; last error: {last}"
                await self._dead_letter(entry_id, raw_fields, reason, times, entry)
                continue
            entries.append(entry)
        if not entries:
            return
        try:
            await self._handler(entries)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.stats.failed_batches += 1
            if len(entries) == 1:
                self._last_errors[entries[0].entry_id] = f"{type(exc).__name__}: {str(exc)[:500]}"
                log.warning("stream entry %s failed: %s", entries[0].entry_id, exc)
                return
            for entry in entries:  # isolate the poison entry
                try:
                    await self._handler([entry])
                except asyncio.CancelledError:
                    raise
                except Exception as single_exc:
                    self._last_errors[entry.entry_id] = f"{type(single_exc).__name__}: {str(single_exc)[:500]}"
                    log.warning("stream entry %s failed: %s", entry.entry_id, single_exc)
                else:
                    await self._ack([entry.entry_id])
            return
        await self._ack([e.entry_id for e in entries])

    async def _ack(self, entry_ids: list[str]) -> None:
        await self._redis.xack(self.stream, self.group, *entry_ids)
        self.stats.handled_entries += len(entry_ids)
        for entry_id in entry_ids:
            self._last_errors.pop(entry_id, None)

    async def _dead_letter(
        self, entry_id: str, raw_fields: dict[Any, Any], reason: str, deliveries: int, entry: StreamEntry | None
    ) -> None:
        fields: dict[Any, Any] = dict(raw_fields)
        fields.update({"original_id": entry_id, "reason": reason, "deliveries": deliveries})
        fields["dead_lettered_ms"] = int(time.time() * 1000)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.dead_stream, fields, maxlen=DEAD_STREAM_MAXLEN, approximate=True)
            pipe.xack(self.stream, self.group, entry_id)
            await pipe.execute()
        self._last_errors.pop(entry_id, None)
        self.stats.dead_lettered += 1
        log.error("dead-lettered stream entry %s: %s", entry_id, reason)
        if self._on_dead_letter is not None:
            self._on_dead_letter(entry, reason)


async def last_entry_id(redis: Redis, *, stream: str = STREAM) -> str:
    """Id of the newest entry ever added (``0-0`` for a new stream): a start point for :func:`tail`."""
    if not await redis.exists(stream):
        return "0-0"
    info = await redis.xinfo_stream(stream)
    return _text(info.get("last-generated-id")) or "0-0"


async def tail(
    redis: Redis,
    *,
    stream: str = STREAM,
    start: str = "$",
    count: int = 100,
    block_ms: int = 1000,
) -> AsyncIterator[list[StreamEntry]]:
    """Yield batches of entries published after ``start`` (``$`` = from now), forever.

    Undecodable entries are skipped (the indexer dead-letters them).
    """
    # Resolve "$" once: re-sending "$" on every XREAD would skip entries
    # published between two calls.
    last_id = await last_entry_id(redis, stream=stream) if start == "$" else start
    while True:
        response: Any = await redis.xread({stream: last_id}, count=count, block=block_ms)
        batch: list[StreamEntry] = []
        for _, entries in response or []:
            for raw_id, raw_fields in entries:
                last_id = _text(raw_id) or last_id
                try:
                    batch.append(decode_entry(last_id, raw_fields))
                except EntryDecodeError:
                    log.warning("skipping undecodable entry %s", last_id)
        if batch:
            yield batch
