"""Deleting files (with the query service up or down) and resuming after a restart."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest
from redis.asyncio import Redis

from shared.settings import Settings
from shared.store.factory import create_meta_store
from shared.store.records import FileRecord
from tests.ingest.conftest import (
    ANALYST,
    client_for,
    get_record,
    make_settings,
    running_app,
    stream_events,
    wait_for_file,
)


class FakeQuery:
    """A tiny real HTTP server standing in for the query service: records requests, answers JSON."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.status = 200
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Read one request, answer, close."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode().split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
        self.requests.append((method, path, headers))
        body = orjson.dumps({"deleted": 3})
        writer.write(
            f"HTTP/1.1 {self.status} X\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def fake_query() -> AsyncIterator[FakeQuery]:
    """A FakeQuery listening on a free port."""
    fake = FakeQuery()
    fake.server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = fake.server.sockets[0].getsockname()[1]
    yield fake
    fake.server.close()
    await fake.server.wait_closed()


async def _uploaded(http: httpx.AsyncClient) -> dict[str, object]:
    response = await http.post("/api/upload", files=[("file", ("a.ndjson", b'{"message": "hi"}\n'))])
    return await wait_for_file(http, response.json()["files"][0]["id"])


async def test_delete_calls_the_query_service_then_removes_file_and_record(
    tmp_path: Path, redis_url: str, redis: Redis, fake_query: FakeQuery
) -> None:
    settings = make_settings(tmp_path, redis_url, query_url=f"http://127.0.0.1:{fake_query.port}")
    async with running_app(settings) as app, client_for(app, settings) as http:
        record = await _uploaded(http)
        stored = await get_record(app, str(record["id"]))
        assert stored is not None and stored.path and await asyncio.to_thread(Path(stored.path).exists)

        async with client_for(app, settings, ANALYST) as analyst:
            assert (await analyst.delete(f"/api/files/{record['id']}")).status_code == 403

        response = await http.delete(f"/api/files/{record['id']}")
        assert response.status_code == 200, response.text
        assert response.json() == {"id": record["id"], "deleted": True, "events_deleted": 3}
        method, path, headers = fake_query.requests[-1]
        assert (method, path) == ("DELETE", f"/internal/sources/upload:{record['id']}")
        assert headers["x-logwarden-internal-token"] == settings.internal_token.get_secret_value()
        assert not await asyncio.to_thread(Path(stored.path).exists)
        assert (await http.get(f"/api/files/{record['id']}")).status_code == 404
        assert (await http.delete(f"/api/files/{record['id']}")).status_code == 404


async def test_delete_with_the_query_service_down_is_503_and_keeps_everything(
    client: httpx.AsyncClient, app: object, ingest_settings: Settings
) -> None:
    record = await _uploaded(client)
    response = await client.delete(f"/api/files/{record['id']}")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "10"
    assert "retry" in response.json()["error"]["message"]
    kept = (await client.get(f"/api/files/{record['id']}")).json()
    assert kept["id"] == record["id"]
    stored = await get_record(app, str(record["id"]))  # type: ignore[arg-type]
    assert stored is not None and stored.path and await asyncio.to_thread(Path(stored.path).exists)


async def test_restart_resumes_uploaded_files_and_fails_interrupted_ones(
    tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    settings = make_settings(tmp_path, redis_url)
    uploads = settings.data_dir / "uploads"
    uploads.mkdir(parents=True)
    meta = create_meta_store(settings)
    await meta.open()
    waiting = FileRecord(filename="w.ndjson", path=str(uploads / "w"), status="uploaded")
    interrupted = FileRecord(filename="i.ndjson", path=str(uploads / "i"), status="processing", records_count=5)
    (uploads / "w").write_bytes(b'{"message": "resumed"}\n')
    (uploads / "i").write_bytes(b'{"message": "half done"}\n')
    (uploads / "leftover.part").write_bytes(b"partial")
    await meta.create_file(waiting)
    await meta.create_file(interrupted)
    await meta.close()

    async with running_app(settings) as app, client_for(app, settings) as http:
        resumed = await wait_for_file(http, waiting.id)
        failed = (await http.get(f"/api/files/{interrupted.id}")).json()
    assert resumed["status"] == "processing" and resumed["records_count"] == 1
    assert failed["status"] == "failed" and "restarted while processing" in failed["failure_reason"]
    assert [e["message"] for e in await stream_events(redis)] == ["resumed"]
    assert not (uploads / "leftover.part").exists()
