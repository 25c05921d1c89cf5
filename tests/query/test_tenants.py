"""Tenant isolation: a tenant-restricted caller only ever sees its own tenant's events."""

from __future__ import annotations

import csv
import io

import httpx
import pytest
from redis.asyncio import Redis

from shared.internal import Principal
from shared.models import LogEvent
from tests.query.conftest import ClientFactory, index_events, search_all
from tests.query.data import make_events

ACME = Principal(kind="key", id="key-acme", name="acme-reader", scopes=frozenset({"read"}), tenant_id="acme")


@pytest.fixture
async def events(redis: Redis, query_app: object) -> list[LogEvent]:
    del query_app
    batch = make_events(300, seed=3)
    batch.append(LogEvent(message="globex only", tenant_id="globex", service="globex-secret", endpoint="/globex"))
    await index_events(redis, batch, per_entry=50)
    return batch


@pytest.fixture
def acme(client_for: ClientFactory) -> httpx.AsyncClient:
    return client_for(ACME)


async def test_search_is_forced_to_the_callers_tenant(acme: httpx.AsyncClient, events: list[LogEvent]) -> None:
    mine = {e.id for e in events if e.tenant_id == "acme"}
    assert 0 < len(mine) < len(events)
    assert {h["id"] for h in await search_all(acme, {"limit": 1000})} == mine
    assert {h["id"] for h in await search_all(acme, {"tenant_id": "acme"})} == mine
    # The query language cannot widen it: it is ANDed with the tenant filter.
    assert await search_all(acme, {"q": "tenant_id:globex"}) == []
    assert await search_all(acme, {"q": "tenant_id:globex OR tenant_id:acme", "limit": 1000}) != []
    assert all(h["tenant_id"] == "acme" for h in await search_all(acme, {"q": "tenant_id:globex OR level:INFO"}))


async def test_naming_another_tenant_is_403(acme: httpx.AsyncClient, events: list[LogEvent]) -> None:
    del events
    for path in ("/api/search", "/api/stats", "/api/export"):
        response = await acme.get(path, params={"tenant_id": "globex"})
        assert response.status_code == 403, path
        response = await acme.get(path, params={"tenant_id": ["acme", "globex"]})
        assert response.status_code == 403, path


async def test_stats_and_export_only_count_the_tenant(
    acme: httpx.AsyncClient, admin: httpx.AsyncClient, events: list[LogEvent]
) -> None:
    mine = [e for e in events if e.tenant_id == "acme"]
    stats = (await acme.get("/api/stats")).json()
    assert stats["total_logs"] == len(mine)
    assert stats["error_count"] == sum(1 for e in mine if e.level in {"ERROR", "CRITICAL"})
    assert "globex-secret" not in {s["service"] for s in stats["error_rate_by_service"]}
    assert (await admin.get("/api/stats")).json()["total_logs"] == len(events)
    exported = list(csv.DictReader(io.StringIO((await acme.get("/api/export")).text)))
    assert {r["id"] for r in exported} == {e.id for e in mine}


async def test_get_by_id_hides_other_tenants(acme: httpx.AsyncClient, events: list[LogEvent]) -> None:
    theirs = next(e for e in events if e.tenant_id == "globex")
    mine = next(e for e in events if e.tenant_id == "acme")
    assert (await acme.get(f"/api/logs/{mine.id}")).status_code == 200
    response = await acme.get(f"/api/logs/{theirs.id}")
    assert response.status_code == 404
    missing = await acme.get("/api/logs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert response.json() == missing.json(), "another tenant's event looks exactly like a missing one"


async def test_suggest_only_the_tenants_values(
    acme: httpx.AsyncClient, admin: httpx.AsyncClient, events: list[LogEvent]
) -> None:
    del events
    assert (await acme.get("/api/suggest/tenant_id")).json() == {"values": ["acme"]}
    assert (await acme.get("/api/suggest/tenant_id", params={"prefix": "glo"})).json() == {"values": []}
    assert "globex" in (await admin.get("/api/suggest/tenant_id")).json()["values"]
    assert "globex-secret" in (await admin.get("/api/suggest/service")).json()["values"]
    services = (await acme.get("/api/suggest/service", params={"limit": 50})).json()["values"]
    assert services and "globex-secret" not in services
    endpoints = (await acme.get("/api/suggest/endpoint", params={"prefix": "/g"})).json()["values"]
    assert endpoints == []


async def test_suggest(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    endpoints = (await admin.get("/api/suggest/endpoint", params={"prefix": "/api/u"})).json()["values"]
    assert set(endpoints) == {e.endpoint for e in events if e.endpoint and e.endpoint.startswith("/api/u")}
    levels = (await admin.get("/api/suggest/level", params={"prefix": "e"})).json()["values"]
    assert levels == ["ERROR"]
    assert len((await admin.get("/api/suggest/server", params={"limit": 2})).json()["values"]) == 2
    assert (await admin.get("/api/suggest/message")).status_code == 404


async def test_popular_searches_are_not_shared_with_restricted_callers(
    client_for: ClientFactory, acme: httpx.AsyncClient, events: list[LogEvent]
) -> None:
    del events
    user = client_for(Principal(kind="user", id="u-1", name="u1", role="analyst"))
    for _ in range(2):
        assert (await user.get("/api/search", params={"q": "tenant_id:globex"})).status_code == 200
    popular = (await user.get("/api/popular-searches")).json()["searches"]
    assert popular == [{"query": "tenant_id:globex", "count": 2}]
    assert (await acme.get("/api/popular-searches")).json()["searches"] == []
