"""POST /api/logs, demo data, and HTTP backpressure (429) against the real app and Redis."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import orjson
from fastapi import FastAPI
from redis.asyncio import Redis

from shared.bus import ensure_group
from shared.settings import Settings
from tests.ingest.conftest import ANALYST, TENANT_KEY, client_for, make_settings, running_app, stream_events


async def test_one_object(client: httpx.AsyncClient, redis: Redis) -> None:
    response = await client.post(
        "/api/logs", json={"message": "hello", "level": "warn", "status": 503, "path": "/api/orders", "x": 1}
    )
    assert response.status_code == 202
    assert response.json() == {"accepted": 1, "rejected": 0, "errors": []}
    (event,) = await stream_events(redis)
    assert (event["message"], event["level"], event["status_code"], event["endpoint"]) == (
        "hello",
        "WARNING",
        503,
        "/api/orders",
    )
    assert event["source"] == "http" and event["attrs"] == {"x": "1"}


async def test_array_with_errors_by_index(client: httpx.AsyncClient, redis: Redis) -> None:
    body = [{"message": "a"}, "not an object", {"message": "c", "status_code": "abc"}, {"message": "d"}]
    response = await client.post("/api/logs", json=body)
    assert response.status_code == 202
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (2, 2)
    assert [e["index"] for e in result["errors"]] == [1, 2]
    assert result["errors"][1]["reason"].startswith("status_code")
    assert [e["message"] for e in await stream_events(redis)] == ["a", "d"]


async def test_ndjson_declared_sniffed_and_gzip(client: httpx.AsyncClient, redis: Redis) -> None:
    ndjson = b'{"message": "one"}\n{"message": "two"}\nnope\n{"message": "four"}\n'
    declared = await client.post("/api/logs", content=ndjson, headers={"content-type": "application/x-ndjson"})
    assert declared.json()["accepted"] == 3
    assert declared.json()["errors"][0]["index"] == 2
    sniffed = await client.post("/api/logs", content=ndjson, headers={"content-type": "application/json"})
    assert sniffed.json()["accepted"] == 3
    zipped = await client.post(
        "/api/logs",
        content=gzip.compress(ndjson),
        headers={"content-type": "application/x-ndjson", "content-encoding": "gzip"},
    )
    assert zipped.status_code == 202 and zipped.json()["accepted"] == 3
    assert len(await stream_events(redis)) == 9


async def test_first_100_errors_only(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/logs", json=[1] * 150)
    body = response.json()
    assert (body["accepted"], body["rejected"], len(body["errors"])) == (0, 150, 100)


async def test_body_limits(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    settings = make_settings(tmp_path, redis_url, max_request_bytes=2048)
    big = b"\n".join(orjson.dumps({"message": f"event {i}"}) for i in range(200))
    async with running_app(settings) as app, client_for(app, settings) as http:
        assert (await http.post("/api/logs", content=big)).status_code == 413
        bomb = gzip.compress(big)
        assert len(bomb) < 2048
        response = await http.post("/api/logs", content=bomb, headers={"content-encoding": "gzip"})
        assert response.status_code == 413
        assert "inflates past" in response.json()["error"]["message"]
        bad = await http.post("/api/logs", content=b"\x1f\x8bnot gzip", headers={"content-encoding": "gzip"})
        assert bad.status_code == 400
        assert (await http.post("/api/logs", content=b"x", headers={"content-encoding": "br"})).status_code == 415
    assert await redis.xlen("logwarden:logs") == 0


async def test_binary_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/logs", content=b"\x89PNG\r\n\x1a\n\x00\x00")
    assert response.status_code == 400
    assert "PNG" in response.json()["error"]["message"]


async def test_tenant_key_stamps_and_rejects(app: FastAPI, ingest_settings: Settings, redis: Redis) -> None:
    body = [{"message": "mine"}, {"message": "other", "tenant_id": "globex"}, {"message": "x", "tenant": "acme"}]
    async with client_for(app, ingest_settings, TENANT_KEY) as tenant:
        result = (await tenant.post("/api/logs", json=body)).json()
    assert result == {
        "accepted": 2,
        "rejected": 1,
        "errors": [{"index": 1, "reason": "tenant_id does not match the API key"}],
    }
    assert [(e["message"], e["tenant_id"]) for e in await stream_events(redis)] == [("mine", "acme"), ("x", "acme")]


async def test_backpressure_answers_429_with_retry_after(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    settings = make_settings(tmp_path, redis_url, backlog_limit=2)
    await ensure_group(redis, group=settings.consumer_group)
    async with running_app(settings) as app, client_for(app, settings) as http:
        for i in range(3):  # three entries, nobody consumes them
            assert (await http.post("/api/logs", json={"message": f"m{i}"})).status_code == 202
        app.state.ingest.gate._checked = float("-inf")  # skip the 250 ms cache in the test
        response = await http.post("/api/logs", json={"message": "too much"})
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == "too_many_requests"
        es = await http.post("/es/_bulk", content=b'{"index":{"_index":"x"}}\n{"message":"m"}\n')
        assert es.status_code == 429
        assert es.json()["error"]["type"] == "es_rejected_execution_exception"
        # The indexer catches up: acknowledge everything, and requests are accepted again.
        entries = await redis.xreadgroup(settings.consumer_group, "test", {"logwarden:logs": ">"})
        await redis.xack("logwarden:logs", settings.consumer_group, *[e[0] for e in entries[0][1]])
        app.state.ingest.gate._checked = float("-inf")
        assert (await http.post("/api/logs", json={"message": "ok now"})).status_code == 202
    assert [e["message"] for e in await stream_events(redis)] == ["m0", "m1", "m2", "ok now"]


async def test_demo_data_is_admin_only_and_published_as_demo(
    app: FastAPI, ingest_settings: Settings, client: httpx.AsyncClient, redis: Redis
) -> None:
    async with client_for(app, ingest_settings, ANALYST) as analyst:
        assert (await analyst.post("/api/demo-data", json={"count": 10, "days": 1})).status_code == 403
    response = await client.post("/api/demo-data", json={"count": 1200, "days": 2})
    assert response.status_code == 202
    assert response.json() == {"published": 1200, "source": "demo"}
    events = await stream_events(redis)
    assert len(events) == 1200 and {e["source"] for e in events} == {"demo"}
    assert await redis.xlen("logwarden:logs") == 3  # batches of publish_batch_size (500)
    assert (await client.post("/api/demo-data", json={"count": 100_001, "days": 1})).status_code == 422
