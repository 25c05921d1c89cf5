"""GET /api/search and /api/logs against events indexed through the real stream -> indexer path."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from shared.internal import Principal
from shared.models import LogEvent, epoch_ms, format_timestamp
from tests.query.conftest import ClientFactory, index_events, search_all
from tests.query.data import BASE, make_events

Predicate = Callable[[LogEvent], bool]


@pytest.fixture
async def events(redis: Redis, query_app: object) -> list[LogEvent]:
    """300 varied events, indexed."""
    del query_app
    batch = make_events(300)
    await index_events(redis, batch, per_entry=37)
    return batch


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [h["id"] for h in hits]


def expected(events: list[LogEvent], predicate: Predicate) -> set[str]:
    chosen = {e.id for e in events if predicate(e)}
    assert chosen, "the test data must contain matching events, or the check proves nothing"
    return chosen


async def test_requests_need_the_internal_token_and_a_principal(client_for: ClientFactory) -> None:
    bare = client_for(None, token_header=False)
    response = await bare.get("/api/search")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert (await bare.delete("/internal/sources/http")).status_code == 401
    no_principal = client_for(None)
    response = await no_principal.get("/api/search")
    assert response.status_code == 401


FILTER_CASES: list[tuple[dict[str, Any], Predicate]] = [
    ({"level": "ERROR"}, lambda e: e.level == "ERROR"),
    ({"level": ["error", "critical"]}, lambda e: e.level in {"ERROR", "CRITICAL"}),
    ({"level": "warn"}, lambda e: e.level == "WARNING"),
    ({"service": "billing"}, lambda e: e.service == "billing"),
    ({"service": ["billing", "auth"]}, lambda e: e.service in {"billing", "auth"}),
    ({"server": "server-02"}, lambda e: e.server == "server-02"),
    ({"endpoint": "/api/users"}, lambda e: e.endpoint == "/api/users"),
    ({"tenant_id": "globex"}, lambda e: e.tenant_id == "globex"),
    ({"status_code": "404"}, lambda e: e.status_code == 404),
    ({"status_code": "5xx"}, lambda e: e.status_code is not None and 500 <= e.status_code <= 599),
    ({"status_code": ["2xx", "301"]}, lambda e: e.status_code in {200, 201, 301}),
    ({"status_code": "4XX"}, lambda e: e.status_code in {400, 404}),
    ({"source": "http"}, lambda e: e.source == "http"),
    (
        {"level": "INFO", "service": "orders", "status_code": "2xx"},
        lambda e: e.level == "INFO" and e.service == "orders" and e.status_code in {200, 201},
    ),
]


async def test_every_filter(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    # One indexing for all cases (each case is labelled in the assertion message).
    for params, predicate in FILTER_CASES:
        hits = await search_all(admin, {**params, "limit": 1000})
        assert set(ids(hits)) == expected(events, predicate), params
        first = (await admin.get("/api/logs", params={**params, "limit": 5})).json()
        assert first["total"] == len(hits), params
        assert len(first["hits"]) == min(5, len(hits)), params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status_code": "6zz"}, "status_code"),
        ({"level": "LOUD"}, "level"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2030-13-45"}, "to"),
        ({"cursor": "not-a-cursor"}, None),
        ({"from": "2030-03-10T00:00:00Z", "to": "2030-03-09T00:00:00Z"}, "from"),
    ],
)
async def test_bad_parameters_are_400(
    admin: httpx.AsyncClient, query_app: object, params: dict[str, Any], field: str | None
) -> None:
    response = await admin.get("/api/search", params=params)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "bad_request"
    if field:
        assert error["details"]["parameter"] == field


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 1001}, {"sort": "message"}, {"order": "up"}])
async def test_invalid_page_and_sort_are_422(
    admin: httpx.AsyncClient, query_app: object, params: dict[str, Any]
) -> None:
    response = await admin.get("/api/search", params=params)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_time_range_bounds_from_inclusive_to_exclusive(admin: httpx.AsyncClient, redis: Redis) -> None:
    t = datetime(2030, 1, 1, 0, 0, tzinfo=UTC)
    batch = [
        LogEvent(timestamp=t - timedelta(milliseconds=1), message="before"),
        LogEvent(timestamp=t, message="at"),
        LogEvent(timestamp=t + timedelta(minutes=5), message="inside"),
        LogEvent(timestamp=t + timedelta(minutes=10), message="end"),
    ]
    await index_events(redis, batch)
    end = t + timedelta(minutes=10)
    for start_value, end_value in (
        (format_timestamp(t), format_timestamp(end)),
        (str(epoch_ms(t)), str(epoch_ms(end))),
        ("2030-01-01T01:00:00+01:00", "2030-01-01T00:10:00"),  # offsets and naive (UTC)
    ):
        hits = await search_all(admin, {"from": start_value, "to": end_value})
        assert sorted(h["message"] for h in hits) == ["at", "inside"], (start_value, end_value)


async def test_relative_times(admin: httpx.AsyncClient, redis: Redis) -> None:
    now = datetime.now(UTC)
    batch = [
        LogEvent(timestamp=now - timedelta(minutes=5), message="recent"),
        LogEvent(timestamp=now - timedelta(hours=2), message="older"),
        LogEvent(timestamp=now - timedelta(days=3), message="oldest"),
    ]
    await index_events(redis, batch)
    recent = await search_all(admin, {"from": "now-15m"})
    assert [h["message"] for h in recent] == ["recent"]
    window = await search_all(admin, {"from": "now-1d", "to": "now-1h"})
    assert [h["message"] for h in window] == ["older"]


QUERY_CASES: list[tuple[str, Predicate]] = [
    ("timeout", lambda e: "timeout" in e.message.split()),
    ("TIMEOUT", lambda e: "timeout" in e.message.split()),
    ('"connection refused"', lambda e: "connection refused" in e.message),
    ("service:auth", lambda e: e.service == "auth"),
    ('endpoint:"/api/users/42"', lambda e: e.endpoint == "/api/users/42"),
    ("endpoint:/api/users*", lambda e: (e.endpoint or "").startswith("/api/users")),
    ("status_code:>=500", lambda e: (e.status_code or 0) >= 500),
    ("status_code:[300 TO 404]", lambda e: e.status_code is not None and 300 <= e.status_code <= 404),
    ("response_time_ms:<100", lambda e: e.response_time_ms is not None and e.response_time_ms < 100),
    ("attrs.region:eu", lambda e: e.attrs.get("region") == "eu"),
    ("attrs.db.table:orders", lambda e: e.attrs.get("db.table") == "orders"),
    ("timeout AND level:ERROR", lambda e: "timeout" in e.message.split() and e.level == "ERROR"),
    ("timeout payment", lambda e: {"timeout", "payment"} <= set(e.message.split())),
    ("timeout OR payment", lambda e: bool({"timeout", "payment"} & set(e.message.split()))),
    ("level:ERROR NOT service:auth", lambda e: e.level == "ERROR" and e.service != "auth"),
    ("level:ERROR -service:auth", lambda e: e.level == "ERROR" and e.service != "auth"),
    ("-timeout", lambda e: "timeout" not in e.message.split()),
    (
        "(service:auth OR service:billing) AND status_code:>=500",
        lambda e: e.service in {"auth", "billing"} and (e.status_code or 0) >= 500,
    ),
    (
        "tenant_id:acme AND NOT (cache OR miss)",
        lambda e: e.tenant_id == "acme" and not {"cache", "miss"} & set(e.message.split()),
    ),
]


async def test_query_language(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    for q, predicate in QUERY_CASES:
        hits = await search_all(admin, {"q": q, "limit": 1000})
        assert set(ids(hits)) == expected(events, predicate), q


async def test_query_and_filters_combine(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    hits = await search_all(
        admin, {"q": "failed", "level": "ERROR", "from": format_timestamp(BASE - timedelta(hours=30))}
    )
    want = expected(
        events,
        lambda e: "failed" in e.message.split() and e.level == "ERROR" and e.timestamp >= BASE - timedelta(hours=30),
    )
    assert set(ids(hits)) == want


@pytest.mark.parametrize(
    ("q", "position"),
    [("level:ERROR AND (timeout", 24), ("status_code:>=abc", 14), ("nosuchfield:x", 0), ('"unterminated', 0)],
)
async def test_bad_query_is_400_with_position(
    admin: httpx.AsyncClient, query_app: object, q: str, position: int
) -> None:
    response = await admin.get("/api/search", params={"q": q})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_query"
    assert isinstance(error["details"]["position"], int)
    assert error["details"]["position"] == position, error
    assert error["details"]["expected"]


async def test_sort_and_order(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    for sort in ("timestamp", "response_time_ms", "status_code"):
        for order in ("asc", "desc"):
            hits = await search_all(admin, {"sort": sort, "order": order, "limit": 77})
            assert len(hits) == len(events) and len(set(ids(hits))) == len(events), (sort, order)
            present = [h[sort] for h in hits if sort in h]
            assert present == sorted(present, reverse=order == "desc"), (sort, order)
            # events without the field come last in both directions
            missing_at = [i for i, h in enumerate(hits) if sort not in h]
            assert missing_at == list(range(len(present), len(hits))), (sort, order)


async def test_default_sort_is_newest_first(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    body = (await admin.get("/api/search", params={"limit": 10})).json()
    newest = sorted(events, key=lambda e: e.timestamp, reverse=True)[:10]
    assert [h["timestamp"] for h in body["hits"]] == [format_timestamp(e.timestamp) for e in newest]
    assert body["total"] == len(events)
    assert body["took_ms"] >= 0


async def test_cursor_pages_through_more_than_1000_hits_without_gaps_or_repeats(
    admin: httpx.AsyncClient, redis: Redis
) -> None:
    t = datetime(2030, 6, 1, tzinfo=UTC)
    # Many ties on timestamp and status code make the tie-breaking matter.
    batch = [
        LogEvent(timestamp=t + timedelta(seconds=i % 50), status_code=200 + (i % 3), message=f"deep {i}")
        for i in range(2500)
    ]
    await index_events(redis, batch, per_entry=500)
    want = {e.id for e in batch}
    for params in ({"limit": 1000}, {"limit": 999, "sort": "status_code", "order": "asc"}, {"limit": 333, "q": "deep"}):
        hits = await search_all(admin, params)
        got = ids(hits)
        assert len(got) == len(want), params
        assert set(got) == want, params
    first = (await admin.get("/api/search", params={"limit": 1000})).json()
    assert first["total"] == 2500 and first["next_cursor"]
    # A cursor made for one sort order is refused for another.
    response = await admin.get("/api/search", params={"cursor": first["next_cursor"], "sort": "status_code"})
    assert response.status_code == 400


async def test_highlights_mark_matched_terms(admin: httpx.AsyncClient, redis: Redis) -> None:
    await index_events(redis, [LogEvent(message="payment declined by the bank"), LogEvent(message="all good")])
    body = (await admin.get("/api/search", params={"q": "declined"})).json()
    [hit] = body["hits"]
    assert hit["highlight"]["message"] == ["payment \x00declined\x01 by the bank"]
    plain = (await admin.get("/api/search", params={"q": "level:INFO", "limit": 5})).json()
    assert all(h["highlight"] == {} for h in plain["hits"])


async def test_get_by_id(admin: httpx.AsyncClient, events: list[LogEvent]) -> None:
    event = events[17]
    response = await admin.get(f"/api/logs/{event.id}")
    assert response.status_code == 200
    assert response.json() == event.to_dict()
    missing = await admin.get("/api/logs/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_openapi_documents_the_public_routes(admin: httpx.AsyncClient) -> None:
    paths = (await admin.get("/openapi.json")).json()["paths"]
    for path in (
        "/api/search",
        "/api/logs",
        "/api/logs/{event_id}",
        "/api/stats",
        "/api/export",
        "/api/suggest/{field}",
        "/api/saved-searches",
        "/api/search-history",
    ):
        assert path in paths
    assert "/internal/sources/{source}" not in paths
    assert "SearchResponse" in str(paths["/api/search"])


async def test_user_principal_kinds_only(client_for: ClientFactory, query_app: object) -> None:
    key = client_for(Principal(kind="key", id="key-1", name="ci", scopes=frozenset({"read"})))
    assert (await key.get("/api/search")).status_code == 200
    assert (await key.get("/api/saved-searches")).status_code == 403
