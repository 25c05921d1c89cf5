"""Uploads: real multipart bodies through httpx, events found on the real stream."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from shared.generator import generate_events, write_events
from shared.settings import Settings
from tests.ingest.conftest import (
    TENANT_KEY,
    client_for,
    get_record,
    make_settings,
    running_app,
    stream_events,
    wait_for_file,
)

END = datetime(2024, 1, 2, tzinfo=UTC)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(200)


def sample(fmt: str, count: int = 25) -> bytes:
    """Generated events written by shared.generator in ``fmt`` (csv, ndjson, json)."""
    buffer = io.BytesIO()
    write_events(generate_events(count=count, seed=7, end=END), buffer, fmt)  # type: ignore[arg-type]
    return buffer.getvalue()


def plain_text(count: int = 25) -> bytes:
    """A plain-text rendering: ``TIMESTAMP LEVEL [service] message``."""
    lines = [
        f"{e.timestamp.strftime('%Y-%m-%d %H:%M:%S,%f')[:-3]} {e.level} {e.service}: {e.message}"
        for e in generate_events(count=count, seed=7, end=END)
    ]
    return ("\n".join(lines) + "\n").encode()


async def upload(http: httpx.AsyncClient, *files: tuple[str, bytes], path: str = "/api/upload") -> httpx.Response:
    """POST the files in the multipart field ``file``."""
    return await http.post(path, files=[("file", (name, data)) for name, data in files])


async def upload_one(http: httpx.AsyncClient, name: str, data: bytes) -> dict[str, Any]:
    """Upload one file, wait until ingest is done with it, return its public record."""
    response = await upload(http, (name, data))
    assert response.status_code == 202, response.text
    (created,) = response.json()["files"]
    assert created["status"] == "uploaded"
    return await wait_for_file(http, created["id"])


CASES = [
    ("logs.csv", lambda: sample("csv"), "csv"),
    ("logs.ndjson", lambda: sample("ndjson"), "ndjson"),
    ("logs.json", lambda: sample("json"), "json"),
    ("app.log", plain_text, "python"),
]


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(("name", "make", "fmt"), CASES, ids=[c[2] for c in CASES])
async def test_upload_each_format_publishes_its_events(
    client: httpx.AsyncClient, redis: Redis, name: str, make: Any, fmt: str, compressed: bool
) -> None:
    data = make()
    if compressed:
        data, name = gzip.compress(data), name + ".gz"
    record = await upload_one(client, name, data)

    assert record["status"] == "processing", record  # "indexed" is the indexer's to set
    assert (record["format"], record["records_count"], record["rejected_count"]) == (fmt, 25, 0), record
    assert record["file_size"] == len(data)
    events = await stream_events(redis)
    assert len(events) == 25
    expected = list(generate_events(count=25, seed=7, end=END))
    assert {e["source"] for e in events} == {f"upload:{record['id']}"}
    assert [e["message"] for e in events] == [e.message for e in expected]
    assert [e["level"] for e in events] == [e.level for e in expected]
    if fmt != "python":  # structured formats carry every field
        first, want = events[0], expected[0]
        assert first["endpoint"] == want.endpoint and first["status_code"] == want.status_code
        assert first["tenant_id"] == want.tenant_id and first["response_time_ms"] == want.response_time_ms
        assert first["timestamp"] == want.to_dict()["timestamp"]
    else:
        assert events[0]["service"] == expected[0].service
    assert all(len(e["id"]) == 26 for e in events)


async def test_several_files_in_one_request_and_files_alias(client: httpx.AsyncClient, redis: Redis) -> None:
    response = await upload(client, ("a.ndjson", sample("ndjson", 5)), ("b.csv", sample("csv", 7)), path="/api/files")
    assert response.status_code == 202
    files = response.json()["files"]
    assert [f["filename"] for f in files] == ["a.ndjson", "b.csv"]
    records = [await wait_for_file(client, f["id"]) for f in files]
    assert [r["records_count"] for r in records] == [5, 7]
    events = await stream_events(redis)
    assert sorted({e["source"] for e in events}) == sorted(f"upload:{f['id']}" for f in files)
    assert len(events) == 12


async def test_files_list_stats_and_tenant_visibility(
    app: FastAPI, ingest_settings: Settings, client: httpx.AsyncClient
) -> None:
    await upload_one(client, "admin.ndjson", sample("ndjson", 3))
    async with client_for(app, ingest_settings, TENANT_KEY) as tenant:
        response = await upload(tenant, ("acme.ndjson", sample("ndjson", 4)))
        acme = await wait_for_file(tenant, response.json()["files"][0]["id"])
        listing = (await tenant.get("/api/files")).json()
        assert [f["filename"] for f in listing["files"]] == ["acme.ndjson"]
        assert listing["stats"]["total_files"] == 1 and listing["stats"]["total_size"] == acme["file_size"]
        others = (await client.get("/api/files")).json()["files"]
        admin_file = next(f for f in others if f["filename"] == "admin.ndjson")
        assert (await tenant.get(f"/api/files/{admin_file['id']}")).status_code == 404
    listing = (await client.get("/api/files")).json()
    assert listing["stats"]["total_files"] == 2
    assert listing["stats"]["total_logs"] == 0  # nothing indexed yet: total_logs counts indexed events
    assert "path" not in listing["files"][0]


async def test_tenant_key_uploads_are_stamped_or_rejected(
    app: FastAPI, ingest_settings: Settings, redis: Redis
) -> None:
    lines = [
        {"message": "no tenant"},
        {"message": "mine", "tenant_id": "acme"},
        {"message": "theirs", "tenant_id": "globex"},
    ]
    body = b"\n".join(orjson.dumps(line) for line in lines) + b"\n"
    async with client_for(app, ingest_settings, TENANT_KEY) as tenant:
        response = await upload(tenant, ("t.ndjson", body))
        record = await wait_for_file(tenant, response.json()["files"][0]["id"])
    assert (record["records_count"], record["rejected_count"]) == (2, 1)
    assert record["errors"] == [{"line": 3, "reason": "tenant_id does not match the API key"}]
    assert record["tenant_id"] == "acme"
    events = await stream_events(redis)
    assert [(e["message"], e["tenant_id"]) for e in events] == [("no tenant", "acme"), ("mine", "acme")]


async def test_bad_line_in_the_middle_is_reported_and_the_rest_published(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    body = b'{"message": "one"}\n{"message": "two"}\n{"message": oops}\n{"message": "four"}\n'
    record = await upload_one(client, "mixed.ndjson", body)
    assert (record["records_count"], record["rejected_count"]) == (3, 1)
    assert len(record["errors"]) == 1 and record["errors"][0]["line"] == 3
    assert record["errors"][0]["reason"].startswith("invalid JSON")
    assert [e["message"] for e in await stream_events(redis)] == ["one", "two", "four"]


async def test_line_too_long_depth_and_field_limits(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    settings = make_settings(tmp_path, redis_url, max_line_bytes=256, max_json_depth=3, max_fields_per_event=8)
    deep = {"message": "deep", "a": {"b": {"c": {"d": 1}}}}
    wide = {"message": "wide", **{f"f{i}": i for i in range(20)}}
    body = b"\n".join(
        [
            orjson.dumps({"message": "ok"}),
            orjson.dumps({"message": "x" * 400}),
            orjson.dumps(deep),
            orjson.dumps(wide),
            orjson.dumps({"message": "after"}),
        ]
    )
    async with running_app(settings) as app, client_for(app, settings) as http:
        record = await upload_one(http, "limits.ndjson", body)
    assert (record["records_count"], record["rejected_count"]) == (3, 2), record
    assert record["errors"] == [
        {"line": 2, "reason": "line longer than 256 bytes"},
        {"line": 3, "reason": "JSON nesting deeper than 3 levels"},
    ]
    events = await stream_events(redis)
    assert [e["message"] for e in events] == ["ok", "wide", "after"]
    assert len(events[1]["attrs"]) <= 8  # extra fields past the limit are dropped, the event kept


async def test_newlines_and_line_separators_inside_json_strings_stay_one_event(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    message = "first line\r\nsecond line\u2028third\u2029fourth"
    ndjson = orjson.dumps({"message": message}) + b"\n" + orjson.dumps({"message": "next"}) + b"\n"
    assert "\u2028".encode() in ndjson  # orjson writes U+2028 raw, as JSON allows
    pretty = b'[\n  {\n    "message": ' + orjson.dumps(message) + b',\n    "level": "warn"\n  }\n]\n'
    first = await upload_one(client, "a.ndjson", ndjson)
    second = await upload_one(client, "b.json", pretty)
    assert (first["records_count"], second["records_count"]) == (2, 1)
    events = await stream_events(redis)
    assert [e["message"] for e in events] == [message, "next", message]
    assert events[2]["level"] == "WARNING"


async def test_png_is_refused_with_a_clear_reason(client: httpx.AsyncClient, redis: Redis) -> None:
    record = await upload_one(client, "photo.png", PNG)
    assert record["status"] == "failed"
    assert record["failure_reason"] == "not a log file: file looks binary (PNG image)"
    assert await redis.xlen("logwarden:logs") == 0


async def test_gzip_bomb_is_refused_and_memory_stays_flat(client: httpx.AsyncClient, redis: Redis) -> None:
    line = b'{"message": "all work and no play makes jack a dull boy"}\n'
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(line * 20_000) for _ in range(400)]  # ~460 MB inflated
    bomb = b"".join(parts) + compressor.flush()
    assert len(bomb) < 2_000_000
    process = psutil.Process()
    before = process.memory_info().rss
    record = await upload_one(client, "bomb.ndjson.gz", bomb)
    growth = process.memory_info().rss - before
    assert record["status"] == "failed"
    assert record["failure_reason"] == "gzip compression ratio above 100:1 (gzip bomb?)"
    assert growth < 50 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
    assert await redis.xlen("logwarden:logs") == 0  # verified before anything was published


async def test_decompressed_size_limit(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    settings = make_settings(tmp_path, redis_url, max_decompressed_bytes=100_000, max_gzip_ratio=1000)
    data = gzip.compress(sample("ndjson", 1000))
    async with running_app(settings) as app, client_for(app, settings) as http:
        record = await upload_one(http, "big.ndjson.gz", data)
    assert record["status"] == "failed"
    assert record["failure_reason"] == "gzip content inflates past the limit of 100000 bytes (gzip bomb?)"
    assert await redis.xlen("logwarden:logs") == 0


async def test_truncated_gzip_fails(client: httpx.AsyncClient, redis: Redis) -> None:
    data = gzip.compress(sample("ndjson", 50))
    record = await upload_one(client, "cut.ndjson.gz", data[: len(data) // 2])
    assert record["status"] == "failed" and "truncated" in record["failure_reason"]
    assert await redis.xlen("logwarden:logs") == 0


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
async def test_too_big_upload_is_413_and_nothing_is_stored(
    tmp_path: Path, redis_url: str, redis: Redis, declare_length: bool
) -> None:
    settings = make_settings(tmp_path, redis_url, max_upload_bytes=4096)
    request = httpx.Request("POST", "http://ingest/api/upload", files=[("file", ("big.ndjson", sample("ndjson", 200)))])
    body = request.read()
    headers = {"content-type": request.headers["content-type"]}

    async def chunks() -> Any:
        for start in range(0, len(body), 1000):
            yield body[start : start + 1000]

    async with running_app(settings) as app, client_for(app, settings) as http:
        if declare_length:
            response = await http.post("/api/upload", content=body, headers=headers)
        else:
            response = await http.post("/api/upload", content=chunks(), headers=headers)
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "payload_too_large"
        assert (await http.get("/api/files")).json()["files"] == []
    uploads = settings.data_dir / "uploads"
    assert not uploads.exists() or list(uploads.iterdir()) == []
    assert await redis.xlen("logwarden:logs") == 0


async def test_upload_needs_a_file_field_and_multipart(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/upload", files=[("other", ("x.txt", b"hello"))])
    assert response.status_code == 422
    response = await client.post("/api/upload", content=b"{}", headers={"content-type": "application/json"})
    assert response.status_code == 415


async def test_requests_without_the_internal_token_are_refused(app: FastAPI) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ingest") as anonymous:
        assert (await anonymous.get("/api/files")).status_code == 401


async def test_records_count_stays_ahead_of_published_events_until_the_end(
    tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    """The protocol with the indexer: indexed >= records_count can only hold once all is published."""
    settings = make_settings(tmp_path, redis_url, publish_batch_size=50)
    async with running_app(settings) as app, client_for(app, settings) as http:
        response = await upload(http, ("many.ndjson", sample("ndjson", 3000)))
        file_id = response.json()["files"][0]["id"]
        samples = 0
        while app.state.ingest.uploads.task(file_id) is not None:
            on_stream = sum(len(orjson.loads(f[b"events"])) for _, f in await redis.xrange("logwarden:logs"))
            record = await get_record(app, file_id)
            assert record is not None
            if on_stream and record.records_count != 3000:
                assert record.records_count > on_stream, (record.records_count, on_stream)
            samples += 1
        final = await get_record(app, file_id)
    assert final is not None and final.records_count == 3000
    assert samples > 1
    assert len(await stream_events(redis)) == 3000
