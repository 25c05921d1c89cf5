"""Store calls appear as spans inside the caller's trace."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.store.base import MetaStore
from shared.store.records import UserRecord
from shared.store.sqlite_meta import SqliteMetaStore
from shared.store.tracing import traced


async def test_each_store_call_is_a_child_span_of_the_request(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    meta: MetaStore = traced(SqliteMetaStore(tmp_path / "m.db"), kind="metastore", system="sqlite", tracer=tracer)
    await meta.open()
    try:
        with tracer.start_as_current_span("request") as request_span:
            await meta.create_user(UserRecord(username="ada", password_hash="x"))
            assert await meta.count_users() == 1
    finally:
        await meta.close()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert {"metastore.open", "metastore.create_user", "metastore.count_users", "metastore.close"} <= set(spans)
    request_id = request_span.get_span_context().span_id
    assert spans["metastore.count_users"].parent is not None
    assert spans["metastore.count_users"].parent.span_id == request_id
    assert spans["metastore.count_users"].attributes == {"db.system": "sqlite"}


async def test_errors_are_recorded_on_the_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    meta = traced(
        SqliteMetaStore(tmp_path / "m.db"), kind="metastore", system="sqlite", tracer=provider.get_tracer("t")
    )
    await meta.open()
    try:
        try:
            await meta.update_user("nobody", colour="red")
        except ValueError:
            pass
        else:
            raise AssertionError("unknown field accepted")
    finally:
        await meta.close()
    failed = next(s for s in exporter.get_finished_spans() if s.name == "metastore.update_user")
    assert not failed.status.is_ok
    assert failed.events[0].name == "exception"
