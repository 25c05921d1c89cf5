"""Saved searches, search history, retention setting, cache, and the internal delete endpoint."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from services.query.cache import GENERATION_KEY
from shared.internal import Principal
from shared.models import LogEvent
from tests.helpers import async_wait_until
from tests.query.conftest import ADMIN, ANALYST, ClientFactory, index_events, search_all

BOB = Principal(kind="user", id="user-bob", name="bob", role="analyst")


def cache_count(kind: str, result: str) -> float:
    return REGISTRY.get_sample_value("logwarden_cache_requests_total", {"kind": kind, "result": result}) or 0.0


async def test_saved_searches_belong_to_their_user(client_for: ClientFactory, query_app: object) -> None:
    alice, bob = client_for(ANALYST), client_for(BOB)
    body = {"name": "5xx on billing", "query": "service:billing AND status_code:>=500", "filters": {"level": ["ERROR"]}}
    created = await alice.post("/api/saved-searches", json=body)
    assert created.status_code == 201
    saved = created.json()
    assert saved["name"] == body["name"] and saved["filters"] == body["filters"] and saved["id"]
    assert [s["id"] for s in (await alice.get("/api/saved-searches")).json()["saved_searches"]] == [saved["id"]]
    assert (await bob.get("/api/saved-searches")).json()["saved_searches"] == []
    # Bob cannot delete Alice's search, and learns nothing about it (404, not 403).
    assert (await bob.delete(f"/api/saved-searches/{saved['id']}")).status_code == 404
    assert (await alice.delete(f"/api/saved-searches/{saved['id']}")).status_code == 204
    assert (await alice.get("/api/saved-searches")).json()["saved_searches"] == []
    assert (await alice.delete(f"/api/saved-searches/{saved['id']}")).status_code == 404


async def test_saved_search_validation(client_for: ClientFactory, query_app: object) -> None:
    alice = client_for(ANALYST)
    bad_query = await alice.post("/api/saved-searches", json={"name": "x", "query": "a AND ("})
    assert bad_query.status_code == 400 and bad_query.json()["error"]["details"]["position"] == 7
    assert (await alice.post("/api/saved-searches", json={"name": "", "query": "a"})).status_code == 422
    assert (await alice.post("/api/saved-searches", json={"name": "x", "nope": 1})).status_code == 422


async def test_history_records_user_searches(client_for: ClientFactory, redis: Redis) -> None:
    await index_events(redis, [LogEvent(message=f"hist {i}", level="ERROR") for i in range(30)])
    alice, bob = client_for(ANALYST), client_for(BOB)
    key = client_for(Principal(kind="key", id="key-1", name="k", scopes=frozenset({"read"})))
    first = (await alice.get("/api/search", params={"q": "hist", "level": "ERROR", "limit": 10})).json()
    await alice.get("/api/search", params={"q": "hist", "limit": 10, "cursor": first["next_cursor"]})  # paging
    await alice.get("/api/search")  # opening the page: not a search
    await alice.get("/api/logs", params={"q": "nothing"})
    await key.get("/api/search", params={"q": "hist"})
    history = (await alice.get("/api/search-history")).json()["history"]
    assert [(h["query"], h["results_count"]) for h in history] == [("nothing", 0), ("hist", 30)]
    assert history[1]["filters"] == {"level": ["ERROR"]}
    assert (await bob.get("/api/search-history")).json()["history"] == []
    assert (await key.get("/api/search-history")).json()["history"] == []
    # Running a search again (here re-sorted) moves it to the top instead of listing it twice.
    await alice.get("/api/search", params={"q": "hist", "level": "ERROR", "sort": "response_time_ms"})
    history = (await alice.get("/api/search-history")).json()["history"]
    assert [h["query"] for h in history] == ["hist", "nothing"]
    assert (await alice.delete("/api/search-history")).json() == {"deleted": 3}
    assert (await alice.get("/api/search-history")).json()["history"] == []
    popular = (await bob.get("/api/popular-searches")).json()["searches"]
    assert popular == []


async def test_search_cache_never_hides_new_events(admin: httpx.AsyncClient, redis: Redis) -> None:
    await index_events(redis, [LogEvent(message="cached one", service="cachetest")])
    params = {"q": "cached", "service": "cachetest"}
    misses, hits = cache_count("search", "miss"), cache_count("search", "hit")
    first = (await admin.get("/api/search", params=params)).json()
    again = (await admin.get("/api/search", params=params)).json()
    assert cache_count("search", "miss") == misses + 1
    assert cache_count("search", "hit") == hits + 1
    assert again["hits"] == first["hits"] and again["total"] == 1
    assert again["took_ms"] != first["took_ms"], "took_ms is measured for each request"
    generation = int(await redis.get(GENERATION_KEY) or 0)
    await index_events(redis, [LogEvent(message="cached two", service="cachetest")])
    assert int(await redis.get(GENERATION_KEY) or 0) > generation
    after = (await admin.get("/api/search", params=params)).json()
    assert after["total"] == 2
    stats = (await admin.get("/api/stats", params=params)).json()
    assert stats["total_logs"] == 2
    await index_events(redis, [LogEvent(message="cached three", service="cachetest")])
    assert (await admin.get("/api/stats", params=params)).json()["total_logs"] == 3
    # The cache lives under logwarden:cache:<kind>:<sha256>.
    keys = [k.decode() async for k in redis.scan_iter(match="logwarden:cache:search:*")]
    assert keys and all(len(k.rsplit(":", 1)[1]) == 64 for k in keys)


async def test_cache_is_per_tenant(client_for: ClientFactory, redis: Redis) -> None:
    await index_events(redis, [LogEvent(message="t", tenant_id="a"), LogEvent(message="t", tenant_id="b")])
    admin = client_for(ADMIN)
    assert (await admin.get("/api/search", params={"q": "t"})).json()["total"] == 2
    tenant_a = client_for(Principal(kind="key", id="k-a", name="a", scopes=frozenset({"read"}), tenant_id="a"))
    assert (await tenant_a.get("/api/search", params={"q": "t"})).json()["total"] == 1


async def test_internal_delete_by_source(client_for: ClientFactory, redis: Redis) -> None:
    batch = [LogEvent(message=f"f {i}", source="upload:FILE1") for i in range(25)] + [LogEvent(message="keep")]
    await index_events(redis, batch)
    admin = client_for(ADMIN)
    assert (await admin.get("/api/search", params={"source": "upload:FILE1"})).json()["total"] == 25
    internal = client_for(None)  # the token alone, as ingest calls it
    response = await internal.delete("/internal/sources/upload:FILE1")
    assert response.status_code == 200 and response.json() == {"deleted": 25}
    assert (await admin.get("/api/search", params={"source": "upload:FILE1"})).json()["total"] == 0
    assert (await admin.get("/api/search")).json()["total"] == 1
    # A batch of the deleted file still in the stream does not bring it back.
    await index_events(redis, [LogEvent(message="late", source="upload:FILE1")])
    assert (await admin.get("/api/search", params={"source": "upload:FILE1"})).json()["total"] == 0
    outsider = client_for(None, token_header=False)
    assert (await outsider.delete("/internal/sources/http")).status_code == 401


async def test_retention_setting(client_for: ClientFactory, redis: Redis) -> None:
    now = datetime.now(UTC)
    old = [LogEvent(timestamp=now - timedelta(days=10, hours=i), message="old") for i in range(5)]
    new = [LogEvent(timestamp=now - timedelta(hours=1), message="new")]
    await index_events(redis, old + new)
    admin, analyst = client_for(ADMIN), client_for(ANALYST)
    assert (await analyst.get("/api/settings/retention")).json() == {"retention_days": 30}
    assert (await analyst.put("/api/settings/retention", json={"retention_days": 7})).status_code == 403
    for bad in (0, 3651, "x"):
        assert (await admin.put("/api/settings/retention", json={"retention_days": bad})).status_code == 422
    response = await admin.put("/api/settings/retention", json={"retention_days": 7})
    assert response.status_code == 200 and response.json() == {"retention_days": 7}
    assert (await analyst.get("/api/settings/retention")).json() == {"retention_days": 7}

    async def old_gone() -> bool:
        hits = await search_all(admin, {})
        return [h["message"] for h in hits] == ["new"]

    await async_wait_until(old_gone, timeout=10, what="retention to delete the old events")
