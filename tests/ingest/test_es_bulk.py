"""The Elasticsearch-compatible API with bodies as Fluent Bit, Vector and Logstash send them."""

from __future__ import annotations

import gzip

import httpx
import orjson
from redis.asyncio import Redis

from tests.ingest.conftest import stream_events


def ndjson(*items: object) -> bytes:
    """NDJSON with the trailing newline the bulk API requires."""
    return b"".join(orjson.dumps(i) + b"\n" for i in items)


async def test_root_probe_and_product_header(client: httpx.AsyncClient) -> None:
    for path in ("/es", "/es/"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.headers["x-elastic-product"] == "Elasticsearch"
        info = response.json()
        assert info["version"]["number"] == "8.11.0"
        assert info["version"]["build_flavor"] == "default"
        assert info["tagline"] == "You Know, for Search"
        assert {"lucene_version", "minimum_wire_compatibility_version"} <= set(info["version"])
    head = await client.head("/es")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["x-elastic-product"] == "Elasticsearch"


async def test_fluent_bit_bulk(client: httpx.AsyncClient, redis: Redis) -> None:
    body = ndjson(
        {"create": {"_index": "fluent-bit"}},
        {"@timestamp": "2024-01-01T12:00:00.123Z", "log": "GET /api/users 200", "kubernetes": {"pod_name": "api-1"}},
        {"create": {"_index": "fluent-bit"}},
        {"@timestamp": "2024-01-01T12:00:01.000Z", "log": "boom", "level": "error"},
    )
    response = await client.post("/es/_bulk", content=body, headers={"content-type": "application/x-ndjson"})
    assert response.status_code == 200
    assert response.headers["x-elastic-product"] == "Elasticsearch"
    result = response.json()
    assert result["errors"] is False
    assert [list(item) for item in result["items"]] == [["create"], ["create"]]
    assert [item["create"]["status"] for item in result["items"]] == [201, 201]
    events = await stream_events(redis)
    assert [e["id"] for e in events] == [item["create"]["_id"] for item in result["items"]]
    assert events[0]["message"] == "GET /api/users 200"
    assert events[0]["timestamp"] == "2024-01-01T12:00:00.123Z"
    assert events[0]["attrs"] == {"kubernetes.pod_name": "api-1", "es_index": "fluent-bit"}
    assert events[1]["level"] == "ERROR" and events[0]["source"] == "bulk"


async def test_vector_bulk_gzip_with_index_in_path_and_ids(client: httpx.AsyncClient, redis: Redis) -> None:
    body = ndjson(
        {"index": {"_index": "vector-2024.01.01"}},
        {"message": "started", "timestamp": "2024-01-01T00:00:00Z", "host": "web-1"},
        {"index": {"_id": "abc-1"}},
        {"message": "second", "timestamp": "2024-01-01T00:00:01Z", "host": "web-2"},
    )
    response = await client.put(
        "/es/vector-default/_bulk", content=gzip.compress(body), headers={"content-encoding": "gzip"}
    )
    result = response.json()
    assert result["errors"] is False
    assert result["items"][0]["index"]["_index"] == "vector-2024.01.01"
    assert result["items"][1]["index"] == {**result["items"][1]["index"], "_index": "vector-default", "_id": "abc-1"}
    events = await stream_events(redis)
    assert [(e["message"], e["server"]) for e in events] == [("started", "web-1"), ("second", "web-2")]
    assert events[1]["attrs"] == {"es_index": "vector-default", "es_id": "abc-1"}


async def test_per_item_errors_and_unsupported_actions(client: httpx.AsyncClient, redis: Redis) -> None:
    body = ndjson(
        {"index": {"_index": "logs"}},
        {"message": "good"},
        {"delete": {"_index": "logs", "_id": "1"}},
        {"update": {"_index": "logs", "_id": "2"}},
        {"doc": {"message": "changed"}},
        {"index": {"_index": "logs"}},
        {"message": "bad status", "status": "teapot"},
        {"create": {}},
        {"message": "no index"},
    )
    result = (await client.post("/es/_bulk", content=body)).json()
    assert result["errors"] is True
    ops = [next(iter(item)) for item in result["items"]]
    assert ops == ["index", "delete", "update", "index", "create"]
    statuses = [item[op]["status"] for item, op in zip(result["items"], ops, strict=True)]
    assert statuses == [201, 400, 400, 400, 400]
    assert result["items"][1]["delete"]["error"]["type"] == "illegal_argument_exception"
    assert "not supported" in result["items"][1]["delete"]["error"]["reason"]
    assert "not supported" in result["items"][2]["update"]["error"]["reason"]
    assert [e["message"] for e in await stream_events(redis)] == ["good"]


async def test_malformed_action_is_a_400_for_the_whole_request(client: httpx.AsyncClient, redis: Redis) -> None:
    response = await client.post("/es/_bulk", content=b'{"index":{}}\n{"message":"x"}\nnot json\n')
    assert response.status_code == 400
    assert response.json()["error"]["reason"].startswith("Malformed action/metadata line [3]")
    assert response.json()["status"] == 400
    assert await redis.xlen("logwarden:logs") == 0


async def test_shipper_start_up_probes(client: httpx.AsyncClient) -> None:
    license_doc = (await client.get("/es/_license")).json()
    assert license_doc["license"]["status"] == "active" and license_doc["license"]["type"] == "basic"
    assert (await client.get("/es/_xpack")).json()["features"]["ilm"]["available"] is True
    assert (await client.get("/es/_cluster/health")).json()["status"] == "green"
    assert (await client.get("/es/_nodes/http")).json()["nodes"]["logwarden"]["version"] == "8.11.0"
    for path in ("/es/_index_template/logs-tpl", "/es/_template/logstash", "/es/_ilm/policy/filebeat"):
        assert (await client.head(path)).status_code == 404
        put = await client.put(path, json={"index_patterns": ["x-*"]})
        assert put.status_code == 200 and put.json() == {"acknowledged": True}
        assert (await client.head(path)).status_code == 200
        assert (await client.get(path)).status_code == 200
    missing = await client.get("/es/some-index/_search")
    assert missing.status_code == 404
    assert missing.headers["x-elastic-product"] == "Elasticsearch"
    assert missing.json()["error"]["type"] == "resource_not_found_exception"
