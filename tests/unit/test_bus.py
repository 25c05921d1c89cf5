"""The Redis stream bus against a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from redis.asyncio import Redis

from shared.bus import (
    DEAD_STREAM,
    STREAM,
    StreamConsumer,
    StreamEntry,
    backlog,
    ensure_group,
    last_entry_id,
    publish,
    tail,
    trim,
)
from shared.models import LogEvent
from tests.helpers import async_wait_until

GROUP = "indexer"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def events(n: int, prefix: str = "m") -> list[LogEvent]:
    return [LogEvent(message=f"{prefix}{i}") for i in range(n)]


class Recorder:
    """A handler that records what it saw and can be told to fail."""

    def __init__(self, fail_on: set[str] | None = None) -> None:
        self.seen: list[StreamEntry] = []
        self.fail_on = fail_on or set()

    async def __call__(self, entries: list[StreamEntry]) -> None:
        for entry in entries:
            if any(e.message in self.fail_on for e in entry.events):
                raise RuntimeError(f"cannot store {entry.entry_id}")
        self.seen.extend(entries)


def consumer(redis: Redis, handler: Recorder, name: str = "c1", **kwargs: int) -> StreamConsumer:
    options = {"claim_idle_ms": 100, "max_deliveries": 3, "block_ms": 50, **kwargs}
    return StreamConsumer(redis, handler, group=GROUP, consumer=name, **options)


async def test_publish_carries_batch_and_traceparent(redis: Redis) -> None:
    batch = events(3)
    entry_id = await publish(redis, batch, traceparent=TRACEPARENT)
    [(raw_id, fields)] = await redis.xrange(STREAM)
    assert raw_id.decode() == entry_id
    assert fields[b"traceparent"].decode() == TRACEPARENT
    assert [e["message"] for e in orjson.loads(fields[b"events"])] == ["m0", "m1", "m2"]
    assert int(fields[b"count"]) == 3


async def test_ack_only_after_handler_succeeds(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    await publish(redis, events(2, "ok"))
    await publish(redis, events(1, "bad"))
    handler = Recorder(fail_on={"bad0"})
    reader = consumer(redis, handler)
    assert await reader.read_once() == 2
    assert [e.events[0].message for e in handler.seen] == ["ok0"]
    summary = await redis.xpending(STREAM, GROUP)
    assert summary["pending"] == 1, "the failing entry stays pending"
    assert await backlog(redis, group=GROUP) == 1


async def test_redelivery_after_consumer_dies_via_xautoclaim(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    await publish(redis, events(1, "lost"))
    # A consumer reads the entry and "dies" before acknowledging it.
    await redis.xreadgroup(GROUP, "dead-consumer", {STREAM: ">"}, count=10)
    survivor = Recorder()
    reader = consumer(redis, survivor, name="survivor")

    async def reclaimed() -> bool:
        await reader.reclaim()
        return bool(survivor.seen)

    await async_wait_until(reclaimed, timeout=5, what="the idle entry to be reclaimed")
    assert survivor.seen[0].events[0].message == "lost0"
    assert survivor.seen[0].deliveries == 2
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 0


async def test_own_pending_entries_are_handled_after_restart(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    await publish(redis, events(1, "mine"))
    await redis.xreadgroup(GROUP, "query-1", {STREAM: ">"}, count=10)  # crashed before ack
    handler = Recorder()
    restarted = consumer(redis, handler, name="query-1", claim_idle_ms=60_000)
    stop = asyncio.Event()
    task = asyncio.create_task(restarted.run(stop))
    try:
        await async_wait_until(lambda: _async_true(bool(handler.seen)), timeout=5, what="own pending handled")
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
    assert handler.seen[0].events[0].message == "mine0"


async def _async_true(value: bool) -> bool:
    return value


async def test_poison_entry_is_dead_lettered_with_reason(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    await publish(redis, events(1, "poison"))
    await publish(redis, events(1, "fine"))
    handler = Recorder(fail_on={"poison0"})
    reader = consumer(redis, handler, max_deliveries=2)
    await reader.read_once()

    async def dead_lettered() -> bool:
        await reader.reclaim()
        return await redis.xlen(DEAD_STREAM) == 1

    await async_wait_until(dead_lettered, timeout=10, what="the poison entry to be dead-lettered")
    [(_, fields)] = await redis.xrange(DEAD_STREAM)
    assert b"RuntimeError: cannot store" in fields[b"reason"]
    assert int(fields[b"deliveries"]) == 3
    assert b"poison0" in fields[b"events"]
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 0
    assert [e.events[0].message for e in handler.seen] == ["fine0"]
    assert reader.stats.dead_lettered == 1


async def test_undecodable_entry_goes_straight_to_dead_letters(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    await redis.xadd(STREAM, {"events": b"not json"})
    handler = Recorder()
    await consumer(redis, handler).read_once()
    [(_, fields)] = await redis.xrange(DEAD_STREAM)
    assert fields[b"reason"].startswith(b"undecodable entry")
    assert handler.seen == []


async def test_batch_failure_isolates_the_poison_entry(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    for prefix in ("a", "bad", "c"):
        await publish(redis, events(1, prefix))
    handler = Recorder(fail_on={"bad0"})
    await consumer(redis, handler).read_once()
    assert sorted(e.events[0].message for e in handler.seen) == ["a0", "c0"]
    assert (await redis.xpending(STREAM, GROUP))["pending"] == 1


async def test_trim_never_drops_pending_or_undelivered_entries(redis: Redis) -> None:
    await ensure_group(redis, group=GROUP)
    ids = [await publish(redis, events(1, f"e{i}-")) for i in range(20)]
    # The group has read 10 entries and acknowledged only the first 5.
    await redis.xreadgroup(GROUP, "c", {STREAM: ">"}, count=10)
    await redis.xack(STREAM, GROUP, *ids[:5])
    removed = await trim(redis, maxlen=2)
    remaining = [r[0].decode() for r in await redis.xrange(STREAM)]
    assert removed == 5
    assert remaining == ids[5:], "pending (5..9) and undelivered (10..19) entries are kept"
    # Once everything is acknowledged, the cap applies.
    more = await redis.xreadgroup(GROUP, "c", {STREAM: ">"}, count=100)
    await redis.xack(STREAM, GROUP, *ids[5:10], *[m[0] for m in more[0][1]])
    await trim(redis, maxlen=2)
    assert await redis.xlen(STREAM) == 2


async def test_trim_without_groups_applies_the_cap(redis: Redis) -> None:
    for i in range(10):
        await publish(redis, events(1, f"x{i}"))
    assert await trim(redis, maxlen=4) == 6
    assert await redis.xlen(STREAM) == 4


async def test_tail_reads_only_new_entries_and_misses_none(redis: Redis) -> None:
    await publish(redis, events(1, "old"))
    seen: list[str] = []
    start = await last_entry_id(redis)

    async def reader() -> None:
        async for batch in tail(redis, start=start, block_ms=50):
            seen.extend(e.events[0].message for e in batch)
            if len(seen) >= 50:
                return

    task = asyncio.create_task(reader())
    # Publish in a burst: entries landing between two XREADs must not be skipped.
    for i in range(50):
        await publish(redis, events(1, f"new{i}-"))
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    assert "old0" not in seen
    assert seen == [f"new{i}-0" for i in range(50)]
