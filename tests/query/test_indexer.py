"""The indexer: ack only after a durable write, dead letters, file counts, tracing, metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.query.app import create_app
from services.query.indexer import Indexer, consumer_name
from shared import bus
from shared.models import LogEvent
from shared.settings import Settings
from shared.store.records import FileRecord
from tests.helpers import async_wait_until
from tests.query.conftest import index_events, make_settings

GROUP = "indexer"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER_TRACEPARENT = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01"


def metric(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def total(admin: httpx.AsyncClient, **params: str) -> int:
    response = await admin.get("/api/search", params=params)
    assert response.status_code == 200, response.text
    return int(response.json()["total"])


async def pending(redis: Redis) -> int:
    return int((await redis.xpending(bus.STREAM, GROUP))["pending"])


async def test_ack_only_after_the_store_has_written(query_app: FastAPI, admin: httpx.AsyncClient, redis: Redis) -> None:
    indexer: Indexer = query_app.state.indexer
    store = query_app.state.store
    await index_events(redis, [LogEvent(message="warmup")])
    # A real failure: the store is closed, so every write raises.
    await store.close()
    failed_before = indexer.consumer.stats.failed_batches
    await bus.publish(redis, [LogEvent(message="must survive")])

    async def failed() -> bool:
        return indexer.consumer.stats.failed_batches > failed_before

    await async_wait_until(failed, timeout=10, what="a failed write")
    assert await pending(redis) == 1, "the entry whose write failed is not acknowledged"
    await store.open()

    async def drained() -> bool:
        return await bus.backlog(redis, group=GROUP) == 0

    await async_wait_until(drained, timeout=10, what="the entry to be redelivered and written")
    assert await total(admin, q="survive") == 1
    assert await redis.xlen(bus.DEAD_STREAM) == 0


async def test_entry_dead_lettered_with_reason_after_max_deliveries(
    tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    settings = make_settings(tmp_path, redis_url, max_deliveries=2)
    app = create_app(settings)
    dead_before = metric("logwarden_dead_lettered_total")
    async with app.router.lifespan_context(app):
        store = app.state.store
        await store.close()
        await bus.publish(redis, [LogEvent(message="doomed")])

        async def dead() -> bool:
            return await redis.xlen(bus.DEAD_STREAM) == 1

        await async_wait_until(dead, timeout=15, what="the entry to be dead-lettered")
        await store.open()
        [(_, fields)] = await redis.xrange(bus.DEAD_STREAM)
        assert b"not open" in fields[b"reason"]
        assert int(fields[b"deliveries"]) == 3
        assert b"doomed" in fields[b"events"]
        assert await pending(redis) == 0
        assert metric("logwarden_dead_lettered_total") == dead_before + 1


async def test_undecodable_entry_does_not_block_its_neighbours(admin: httpx.AsyncClient, redis: Redis) -> None:
    await bus.publish(redis, [LogEvent(message="before poison")])
    await redis.xadd(bus.STREAM, {"events": b'[{"level": "LOUD"}]'})
    await index_events(redis, [LogEvent(message="after poison")])
    assert await total(admin, q="poison") == 2
    [(_, fields)] = await redis.xrange(bus.DEAD_STREAM)
    assert fields[b"reason"].startswith(b"undecodable entry")


@pytest.mark.parametrize("per_entry", [7, 500])
async def test_file_counts_and_status(
    query_app: FastAPI, admin: httpx.AsyncClient, redis: Redis, per_entry: int
) -> None:
    meta = query_app.state.meta
    # Ingest's protocol: while parsing, records_count stays above what was published;
    # the exact count is written before the last batch goes out.
    parsing = await meta.create_file(FileRecord(filename="a.csv", status="processing", records_count=101))
    final = await meta.create_file(FileRecord(filename="b.csv", status="processing", records_count=60))
    done_elsewhere = await meta.create_file(FileRecord(filename="c.csv", status="failed", records_count=5))
    batch = [LogEvent(message=f"a {i}", source=f"upload:{parsing.id}") for i in range(50)]
    batch += [LogEvent(message=f"b {i}", source=f"upload:{final.id}") for i in range(60)]
    batch += [LogEvent(message=f"c {i}", source=f"upload:{done_elsewhere.id}") for i in range(5)]
    batch += [LogEvent(message="not a file", source="http")]
    await index_events(redis, batch, per_entry=per_entry)
    a, b, c = [await meta.get_file(f.id) for f in (parsing, final, done_elsewhere)]
    assert (a.indexed_count, a.status) == (50, "processing")
    assert (b.indexed_count, b.status) == (60, "indexed")
    assert (c.indexed_count, c.status) == (5, "failed"), "the indexer only finishes files still processing"
    assert await total(admin, source=f"upload:{final.id}") == 60


async def test_redelivered_entry_is_recounted_not_double_counted(
    query_app: FastAPI, admin: httpx.AsyncClient, redis: Redis
) -> None:
    meta = query_app.state.meta
    record = await meta.create_file(FileRecord(filename="r.csv", status="processing", records_count=40))
    events = [LogEvent(message=f"r {i}", source=f"upload:{record.id}") for i in range(20)]
    # As if a previous process wrote and counted these, then died before acknowledging:
    await query_app.state.store.write(events)
    await meta.increment_file_counts(record.id, indexed=20)
    indexer: Indexer = query_app.state.indexer
    await indexer.stop()  # so the dead consumer below, not the indexer, receives the entry
    await bus.publish(redis, events)
    await redis.xreadgroup(GROUP, "query-dead-host-1", {bus.STREAM: ">"}, count=10)  # delivered, never acked
    indexer.start()

    async def reclaimed() -> bool:
        return await bus.backlog(redis, group=GROUP) == 0

    await async_wait_until(reclaimed, timeout=10, what="the dead consumer's entry to be reclaimed")
    assert (await meta.get_file(record.id)).indexed_count == 20
    assert await total(admin, source=f"upload:{record.id}") == 20


async def test_index_batch_span_links_the_publishers_traces(query_app: FastAPI, redis: Redis) -> None:
    exporter = InMemorySpanExporter()
    query_app.state.tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    await bus.ensure_group(redis, group=GROUP)
    # One entry alone: the batch span is a child of the publishing request's span.
    await bus.publish(redis, [LogEvent(message="single")], traceparent=TRACEPARENT)
    await index_events(redis, [])
    spans = [s for s in exporter.get_finished_spans() if s.name == "index batch"]
    assert spans and spans[-1].parent is not None
    assert format(spans[-1].context.trace_id, "032x") == TRACEPARENT.split("-")[1]
    assert format(spans[-1].parent.span_id, "016x") == TRACEPARENT.split("-")[2]
    # Several entries read together: one span linking each entry's trace.
    exporter.clear()
    indexer: Indexer = query_app.state.indexer
    await indexer.stop()  # read the next two entries in one batch, deterministically
    await bus.publish(redis, [LogEvent(message="one")], traceparent=TRACEPARENT)
    await bus.publish(redis, [LogEvent(message="two")], traceparent=OTHER_TRACEPARENT)
    await indexer.consumer.read_once(block_ms=100)
    indexer.start()
    [span] = [s for s in exporter.get_finished_spans() if s.name == "index batch"]
    linked = {format(link.context.trace_id, "032x") for link in span.links}
    assert linked == {TRACEPARENT.split("-")[1], OTHER_TRACEPARENT.split("-")[1]}
    assert span.attributes is not None and span.attributes["logwarden.events"] == 2


async def test_metrics_and_trim(query_app: FastAPI, query_settings: Settings, redis: Redis) -> None:
    indexed_before = metric("logwarden_indexed_events_total")
    batches_before = metric("logwarden_index_batch_latency_seconds_count")
    await index_events(redis, [LogEvent(message=f"m {i}") for i in range(30)], per_entry=10)
    assert metric("logwarden_indexed_events_total") == indexed_before + 30
    assert metric("logwarden_index_batch_latency_seconds_count") > batches_before
    indexer: Indexer = query_app.state.indexer
    await bus.publish(redis, [LogEvent(message="late")])
    await redis.xreadgroup(GROUP, "someone-else", {bus.STREAM: ">"}, count=10)  # pending elsewhere
    await indexer.update_lag_metrics()
    assert metric("logwarden_consumer_lag") == 1
    assert metric("logwarden_oldest_pending_age_seconds") >= 0
    assert await indexer.trim_stream() == 0  # under the cap: nothing to trim
    assert consumer_name(query_settings).endswith(f"-{query_settings.query_port}")
    health = (await indexer.health()).to_dict()
    assert health["status"] == "healthy" and health["details"]["indexed_events"] >= 30
