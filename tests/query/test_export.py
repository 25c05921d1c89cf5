"""GET /api/export: streamed CSV/NDJSON, every matching row, formula-safe, gzip when large."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import gzip
import io
from datetime import UTC, datetime, timedelta

import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from services.query.export import csv_cell, neutralise
from shared.models import LogEvent
from shared.settings import Settings
from tests.query.conftest import ADMIN, index_events

FORMULA = "=cmd|' /C calc'!A0"


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def test_csv_export_has_every_row_and_neutralises_formulas(admin: httpx.AsyncClient, redis: Redis) -> None:
    t = datetime(2030, 2, 1, tzinfo=UTC)
    batch = [LogEvent(timestamp=t + timedelta(seconds=i), message=f"row {i}", service="exp") for i in range(2345)]
    dangerous = [
        LogEvent(timestamp=t, message=FORMULA, service="exp"),
        LogEvent(timestamp=t, message="+1+1", service="@SUM(A1)", endpoint="-2", attrs={"x": "=1"}),
        LogEvent(timestamp=t, message="\tTAB", user_id="\rCR", service="exp"),
    ]
    await index_events(redis, batch + dangerous, per_entry=400)
    response = await admin.get("/api/export", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="logwarden-export-')
    assert response.headers["content-disposition"].endswith('.csv"')
    table = rows(response.text)
    assert len(table) == len(batch) + len(dangerous)
    assert len({r["id"] for r in table}) == len(table)
    by_message = {r["message"]: r for r in table}
    assert "'" + FORMULA in by_message
    assert FORMULA not in by_message
    tricky = by_message["'+1+1"]
    assert tricky["service"] == "'@SUM(A1)" and tricky["endpoint"] == "'-2"
    assert orjson.loads(tricky["attrs"]) == {"x": "=1"}  # a JSON cell starts with "{": never a formula
    assert by_message["'\tTAB"]["user_id"] == "'\rCR"
    for row in table:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), row


def test_cell_rules() -> None:
    assert neutralise("=1+2") == "'=1+2" and neutralise("ok=1") == "ok=1"
    assert csv_cell(503) == "503" and csv_cell(1.5) == "1.5" and csv_cell(None) == ""
    assert csv_cell({"k": "=v"}).startswith("{")


async def test_ndjson_export_with_filters(admin: httpx.AsyncClient, redis: Redis) -> None:
    batch = [LogEvent(message=f"n {i}", level="ERROR" if i % 3 == 0 else "INFO") for i in range(1500)]
    await index_events(redis, batch, per_entry=500)
    response = await admin.get(
        "/api/export", params={"format": "ndjson", "level": "ERROR", "sort": "timestamp", "order": "asc"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    want = {e.id: e for e in batch if e.level == "ERROR"}
    assert len(lines) == len(want) == 500
    assert {line["id"] for line in lines} == set(want)
    assert all("highlight" not in line for line in lines)
    assert lines[0] == want[lines[0]["id"]].to_dict()


async def test_large_export_is_gzipped_when_accepted(admin: httpx.AsyncClient, redis: Redis) -> None:
    batch = [LogEvent(message=f"compress me {i}") for i in range(1200)]
    await index_events(redis, batch, per_entry=600)
    async with admin.stream(
        "GET", "/api/export", params={"format": "csv"}, headers={"Accept-Encoding": "gzip"}
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        raw = b"".join([chunk async for chunk in response.aiter_raw()])
    table = rows(gzip.decompress(raw).decode())
    assert len(table) == 1200
    # Without Accept-Encoding: gzip (or a small export) the body is plain.
    plain = await admin.get("/api/export", params={"format": "csv"}, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(rows(plain.text)) == 1200
    small = await admin.get("/api/export", params={"q": "1199"}, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers and len(rows(small.text)) == 1


async def _drive(
    app: FastAPI, path: str, query: str, headers: dict[str, str], *, disconnect_after: int | None
) -> list[bytes]:
    """Call the ASGI app directly, recording each body message (httpx's ASGITransport joins them)."""
    bodies: list[bytes] = []
    enough = asyncio.Event()
    sent_disconnect = asyncio.Event()

    async def receive() -> dict[str, object]:
        await enough.wait()  # never set when the client stays
        sent_disconnect.set()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            bodies.append(bytes(message["body"]))  # type: ignore[arg-type]
            if disconnect_after is not None and len(bodies) >= disconnect_after:
                enough.set()
            if sent_disconnect.is_set():
                raise OSError("client went away")  # what a server does when writing to a closed socket

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("query", 80),
    }
    with contextlib.suppress(OSError):
        await asyncio.wait_for(app(scope, receive, send), 30)
    return bodies


async def test_export_streams_page_by_page_and_stops_on_disconnect(
    query_app: FastAPI, query_settings: Settings, redis: Redis
) -> None:
    batch = [LogEvent(message=f"s {i}") for i in range(5000)]
    await index_events(redis, batch, per_entry=1000)
    headers = ADMIN.headers(query_settings.internal_token.get_secret_value())
    bodies = await _drive(query_app, "/api/export", "format=ndjson", headers, disconnect_after=None)
    assert len(bodies) == 5, "one body message per 1000-event page: the export is never built whole"
    assert sum(b.count(b"\n") for b in bodies) == 5000
    cut = await _drive(query_app, "/api/export", "format=ndjson", headers, disconnect_after=1)
    assert 1 <= len(cut) < 5, "paging stops once the client is gone"


async def test_export_bad_query_is_400_before_streaming(admin: httpx.AsyncClient, query_app: object) -> None:
    response = await admin.get("/api/export", params={"q": "a AND ("})
    assert response.status_code == 400
    assert response.json()["error"]["details"]["position"] == 7
    assert (await admin.get("/api/export", params={"format": "xlsx"})).status_code == 422
