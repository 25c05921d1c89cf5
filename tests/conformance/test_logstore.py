"""LogStore conformance: one suite, every backend.

tantivy always runs (an index under ``tmp_path``). Elasticsearch runs when
``LOGWARDEN_ELASTICSEARCH_URL`` points at a server: each test gets its own index
prefix, whose indices and template are deleted afterwards.

Events span several UTC days on purpose (tantivy keeps one index per day, and
Elasticsearch one index per day too), so every operation is checked across days.
"""

from __future__ import annotations

import math
import os
import random
import secrets
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.models import ERROR_LEVELS, LogEvent, format_timestamp
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.parser import parse
from shared.store.base import Filters, LogStore, SearchRequest, StatsRequest
from shared.store.tantivy_store import TantivyLogStore

ES_URL = os.environ.get("LOGWARDEN_ELASTICSEARCH_URL")

BACKENDS = [
    pytest.param("tantivy", id="tantivy"),
    pytest.param(
        "elasticsearch",
        id="elasticsearch",
        marks=pytest.mark.skipif(not ES_URL, reason="LOGWARDEN_ELASTICSEARCH_URL not set"),
    ),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[LogStore]:
    """An opened, empty LogStore of each backend; closed (and for Elasticsearch deleted) afterwards."""
    if request.param == "tantivy":
        tantivy_store = TantivyLogStore(tmp_path / "logs")
        await tantivy_store.open()
        try:
            yield tantivy_store
        finally:
            await tantivy_store.close()
        return

    from shared.settings import Settings
    from shared.store.elasticsearch_store import ElasticsearchLogStore

    prefix = f"logwarden-test-{uuid.uuid4().hex[:12]}"
    settings = Settings(
        log_store="elasticsearch",
        elasticsearch_url=ES_URL,
        elasticsearch_index_prefix=prefix,
        internal_token=secrets.token_hex(32),
        data_dir=tmp_path / "data",
    )
    es_store = ElasticsearchLogStore(settings)
    await es_store.open()
    try:
        yield es_store
    finally:
        await es_store.drop_everything()
        await es_store.close()


# --- helpers ----------------------------------------------------------------------------


async def all_ids(store: LogStore, request: SearchRequest) -> list[str]:
    """Every hit id, paging with the cursor until it runs out."""
    ids: list[str] = []
    cursor = None
    for _ in range(100_000):
        result = await store.search(
            SearchRequest(
                query=request.query,
                filters=request.filters,
                sort=request.sort,
                order=request.order,
                limit=request.limit,
                cursor=cursor,
                highlight=False,
            )
        )
        ids.extend(h["id"] for h in result.hits)
        cursor = result.next_cursor
        if cursor is None:
            return ids
    raise AssertionError("cursor never ran out")


async def ids_of(store: LogStore, query: Node | str, filters: Filters | None = None) -> set[str]:
    """Set of ids matching a query (text is parsed with the real parser)."""
    node = parse(query) if isinstance(query, str) else query
    result = await store.search(SearchRequest(query=node, filters=filters or Filters(), limit=1000))
    ids = {h["id"] for h in result.hits}
    assert result.total == len(ids)
    return ids


def ev(event_id: str, ts: str, level: str, message: str, **fields: Any) -> LogEvent:
    """A hand-written event."""
    return LogEvent(id=event_id, timestamp=datetime.fromisoformat(ts), level=level, message=message, **fields)


SMALL = [
    ev("e01", "2024-05-01T23:59:59.999+00:00", "INFO", "User login succeeded for alice",
       service="api", server="srv-1", endpoint="/api/users", method="GET", status_code=200,
       response_time_ms=12.5, user_id="u1", tenant_id="t1", source="http",
       attrs={"region": "eu-west", "app.version": "1.2"}),
    ev("e02", "2024-05-02T00:00:00.000+00:00", "ERROR", "Database connection failed: timeout after 30s",
       service="api", server="srv-1", endpoint="/api/users", method="POST", status_code=500,
       response_time_ms=250.0, user_id="u2", tenant_id="t1", source="http", attrs={"region": "eu-west"}),
    ev("e03", "2024-05-02T08:30:00.000+00:00", "WARNING", "Order not found",
       service="web", server="srv-2", endpoint="/api/orders", method="GET", status_code=404,
       response_time_ms=40.0, user_id="u1", tenant_id="t2", source="upload:f1", attrs={"region": "us-east"}),
    ev("e04", "2024-05-02T12:00:00.000+00:00", "CRITICAL", "Disk full on /var/lib",
       service="worker", server="srv-3", tenant_id="t2", source="syslog"),
    ev("e05", "2024-05-02T12:00:00.000+00:00", "DEBUG", "cache miss for key orders:42",
       service="web", server="srv-2", endpoint="/api/orders/42", method="DELETE", status_code=204,
       response_time_ms=5.0, user_id="u3", tenant_id="t1", source="upload:f1", attrs={"region": "us-east"}),
    ev("e06", "2024-05-03T00:00:00.001+00:00", "ERROR", "Payment gateway timeout",
       service="api", server="srv-1", endpoint="/api/payments", method="POST", status_code=503,
       response_time_ms=900.0, user_id="u4", tenant_id="t3", source="http", attrs={"region": "ap-south"}),
    ev("e07", "2024-05-03T09:15:00.000+00:00", "INFO", "User logout for bob",
       service="web", server="srv-2", endpoint="/api/users", method="GET", status_code=200,
       response_time_ms=20.0, user_id="u2", tenant_id="t1", source="upload:f2"),
    ev("e08", "2024-05-03T10:00:00.000+00:00", "ERROR", "Database connection failed: timeout after 30s",
       service="worker", server="srv-3", user_id="u5", tenant_id="t3", source="tcp",
       attrs={"job": "nightly-report"}),
    ev("e09", "2024-05-03T23:00:00.000+00:00", "INFO", "Health check redirected",
       service="api", server="srv-1", endpoint="/healthz", method="GET", status_code=301,
       response_time_ms=1.0, tenant_id="t1", source="http"),
    ev("e10", "2024-05-03T12:00:00.000+00:00", "INFO", "Ünïcode café 日本語 message",
       service="web", server="srv-2", user_id="u1", tenant_id="t2", source="http", attrs={"region": "eu-west"}),
]  # fmt: skip
ALL_SMALL = {e.id for e in SMALL}


def utc(text: str) -> datetime:
    """Aware UTC datetime from ISO text."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- writes, get, idempotency ---------------------------------------------------------------


async def test_write_is_idempotent_and_searchable_at_once(store: LogStore) -> None:
    await store.write(SMALL)
    first = await store.search(SearchRequest(limit=100))
    assert first.total == len(SMALL)
    await store.write(SMALL)  # a redelivered batch
    await store.write(SMALL[:3])
    again = await store.search(SearchRequest(limit=100))
    assert again.total == len(SMALL)
    assert sorted(h["id"] for h in again.hits) == sorted(ALL_SMALL)


async def test_get_by_id_across_days(store: LogStore) -> None:
    await store.write(SMALL)
    for event in SMALL:
        assert await store.get(event.id) == event
    assert await store.get("nope") is None
    # A ULID id whose creation time is far from the event's own timestamp.
    late = LogEvent(timestamp=utc("2024-01-15T03:00:00"), message="old event, new id")
    await store.write([late])
    assert await store.get(late.id) == late


async def test_hits_are_wire_dicts(store: LogStore) -> None:
    await store.write(SMALL)
    result = await store.search(SearchRequest(query=parse("level:CRITICAL"), limit=10))
    assert len(result.hits) == 1
    hit = dict(result.hits[0])
    hit.pop("highlight")
    assert hit == SMALL[3].to_dict()


async def test_unicode_and_100kb_message(store: LogStore) -> None:
    filler = " ".join(f"word{i}" for i in range(14_000))
    long_message = f"start {filler} zebrafinale"
    assert len(long_message) > 100_000
    big = LogEvent(timestamp=utc("2024-05-02T05:00:00"), message=long_message, service="big")
    emoji = LogEvent(timestamp=utc("2024-05-02T05:00:01"), message="Ошибка подключения 🚀 naïve", service="uni")
    await store.write([*SMALL, big, emoji])
    assert await ids_of(store, "zebrafinale") == {big.id}
    assert await ids_of(store, "word13999") == {big.id}
    assert await ids_of(store, "ошибка") == {emoji.id}
    assert await ids_of(store, '"ошибка подключения"') == {emoji.id}
    assert await ids_of(store, "日本語") == {"e10"}
    assert await ids_of(store, "CAFÉ") == {"e10"}
    got = await store.get(big.id)
    assert got is not None and got.message == long_message
    result = await store.search(SearchRequest(query=parse("zebrafinale"), limit=1))
    assert result.hits[0]["message"] == long_message


# --- the query language -------------------------------------------------------------------------

QUERY_CASES: list[tuple[str | Node, set[str]]] = [
    ("", ALL_SMALL),
    ("database", {"e02", "e08"}),
    ("DATABASE", {"e02", "e08"}),
    ('"connection failed"', {"e02", "e08"}),
    ('"failed connection"', set()),
    ("timeout", {"e02", "e06", "e08"}),
    ("database timeout", {"e02", "e08"}),
    ("database OR payment", {"e02", "e06", "e08"}),
    ("timeout -database", {"e06"}),
    ("timeout AND NOT database", {"e06"}),
    ("user*", {"e01", "e07"}),
    ("level:ERROR", {"e02", "e06", "e08"}),
    ("level:error", {"e02", "e06", "e08"}),
    ("service:api AND level:ERROR", {"e02", "e06"}),
    ("(service:web OR service:worker) AND NOT level:DEBUG", {"e03", "e04", "e07", "e08", "e10"}),
    ("-level:INFO", {"e02", "e03", "e04", "e05", "e06", "e08"}),
    ("status_code:500", {"e02"}),
    ("status_code:>=500", {"e02", "e06"}),
    ("status_code:<204", {"e01", "e07"}),
    ("status_code:[200 TO 299]", {"e01", "e05", "e07"}),
    ("status_code:{200 TO 404}", {"e05", "e09"}),
    ("response_time_ms:>100", {"e02", "e06"}),
    ("response_time_ms:<=5", {"e05", "e09"}),
    ("response_time_ms:12.5", {"e01"}),
    ("endpoint:/api/users*", {"e01", "e02", "e07"}),
    ("endpoint:/api/orders*", {"e03", "e05"}),
    ('endpoint:"/api/users"', {"e01", "e02", "e07"}),
    ("endpoint:/api/users", {"e01", "e02", "e07"}),
    ('source:"upload:f1"', {"e03", "e05"}),
    ("source:upload*", {"e03", "e05", "e07"}),
    ("server:srv-3", {"e04", "e08"}),
    ("user_id:u1", {"e01", "e03", "e10"}),
    ("tenant_id:t3 OR method:DELETE", {"e05", "e06", "e08"}),
    ("service:[b TO x]", {"e03", "e04", "e05", "e07", "e08", "e10"}),
    ("service:{api TO web}", set()),
    ("attrs.region:eu-west", {"e01", "e02", "e10"}),
    ("attrs.region:us*", {"e03", "e05"}),
    ("attrs.app.version:1.2", {"e01"}),
    ('attrs.job:"nightly-report"', {"e08"}),
    ("attrs.region:[a TO f]", {"e01", "e02", "e06", "e10"}),
    ("attrs.missing:x", set()),
    ("timestamp:>=2024-05-02T12:00:00Z", {"e04", "e05", "e06", "e07", "e08", "e09", "e10"}),
    ("timestamp:[2024-05-02T00:00:00Z TO 2024-05-03T00:00:00Z}", {"e02", "e03", "e04", "e05"}),
    ("timestamp:<2024-05-02", {"e01"}),
    ("café", {"e10"}),
    ('"café 日本語"', {"e10"}),
    # Trees built directly (constructs the parser cannot produce, or edge shapes).
    (Term("status_code", "5xx"), {"e02", "e06"}),
    (Term("status_code", "2xx"), {"e01", "e05", "e07"}),
    (Phrase("message", "failed: timeout"), {"e02", "e08"}),
    (Prefix("level", "CRIT"), {"e04"}),
    (Range("status_code", None, None), {"e01", "e02", "e03", "e05", "e06", "e07", "e09"}),
    (Not(Range("response_time_ms", None, None)), {"e04", "e08", "e10"}),
    (And((Term("service", "web"), Or((Term("level", "INFO"), Term("level", "DEBUG"))))), {"e05", "e07", "e10"}),
    (Or((Term("message", "nonexistent"), Term("id", "e09"))), {"e09"}),
    (Not(MatchAll()), set()),
]


@pytest.mark.parametrize(("query", "expected"), QUERY_CASES, ids=[str(q) for q, _ in QUERY_CASES])
async def test_query_language(store: LogStore, query: str | Node, expected: set[str]) -> None:
    await store.write(SMALL)
    assert await ids_of(store, query) == expected


async def test_highlight_markers(store: LogStore) -> None:
    await store.write(SMALL)
    result = await store.search(SearchRequest(query=parse('database "gateway timeout"'), limit=10))
    assert {h["id"] for h in result.hits} == set()
    result = await store.search(SearchRequest(query=parse("database OR payment"), limit=10))
    by_id = {h["id"]: h["highlight"] for h in result.hits}
    assert set(by_id) == {"e02", "e06", "e08"}
    assert by_id["e02"]["message"] == ["\x00Database\x01 connection failed: timeout after 30s"]
    assert by_id["e06"]["message"] == ["\x00Payment\x01 gateway timeout"]
    assert "<" not in "".join(by_id["e08"]["message"])
    plain = await store.search(SearchRequest(query=parse("level:INFO"), limit=10))
    assert all(not h["highlight"].get("message") for h in plain.hits)
    off = await store.search(SearchRequest(query=parse("database"), limit=10, highlight=False))
    assert all(not h["highlight"] for h in off.hits)


async def test_unknown_field_and_bad_values_raise(store: LogStore) -> None:
    await store.write(SMALL)
    with pytest.raises(ValueError):
        await store.search(SearchRequest(query=Term("nosuchfield", "x")))
    with pytest.raises(ValueError):
        await store.search(SearchRequest(query=Term("status_code", "abc")))
    with pytest.raises(ValueError):
        await store.search(SearchRequest(filters=Filters(status_codes=("5zz",))))
    with pytest.raises(ValueError):
        await store.search(SearchRequest(limit=1001))


# --- filters --------------------------------------------------------------------------------------

FILTER_CASES: list[tuple[Filters, set[str]]] = [
    (Filters(levels=("ERROR", "CRITICAL")), {"e02", "e04", "e06", "e08"}),
    (Filters(services=("web",)), {"e03", "e05", "e07", "e10"}),
    (Filters(servers=("srv-1",), levels=("INFO",)), {"e01", "e09"}),
    (Filters(endpoints=("/api/users", "/healthz")), {"e01", "e02", "e07", "e09"}),
    (Filters(tenant_ids=("t2",)), {"e03", "e04", "e10"}),
    (Filters(sources=("upload:f1", "tcp")), {"e03", "e05", "e08"}),
    (Filters(status_codes=("5xx",)), {"e02", "e06"}),
    (Filters(status_codes=("2xx", "404")), {"e01", "e03", "e05", "e07"}),
    (Filters(status_codes=("3xx",)), {"e09"}),
    # from inclusive, to exclusive, to the millisecond, across day boundaries
    (Filters(time_from=utc("2024-05-02T00:00:00")), ALL_SMALL - {"e01"}),
    (Filters(time_to=utc("2024-05-02T00:00:00")), {"e01"}),
    (Filters(time_from=utc("2024-05-01T23:59:59.999"), time_to=utc("2024-05-02T00:00:00.001")), {"e01", "e02"}),
    (Filters(time_from=utc("2024-05-02T12:00:00"), time_to=utc("2024-05-03T00:00:00.001")), {"e04", "e05"}),
    (Filters(time_from=utc("2024-05-02T12:00:00"), time_to=utc("2024-05-03T00:00:00.002")), {"e04", "e05", "e06"}),
    (Filters(time_from=utc("2024-06-01T00:00:00")), set()),
    (Filters(services=("api",), status_codes=("5xx",), time_from=utc("2024-05-03T00:00:00")), {"e06"}),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
async def test_filters(store: LogStore, filters: Filters, expected: set[str]) -> None:
    await store.write(SMALL)
    assert await ids_of(store, MatchAll(), filters) == expected


async def test_filters_and_query_combine(store: LogStore) -> None:
    await store.write(SMALL)
    assert await ids_of(store, "timeout", Filters(services=("worker",))) == {"e08"}


# --- sorting and paging ------------------------------------------------------------------------------

SORTS = [(s, o) for s in ("timestamp", "response_time_ms", "status_code") for o in ("asc", "desc")]


@pytest.mark.parametrize(("sort", "order"), SORTS)
async def test_sort_orders(store: LogStore, sort: str, order: str) -> None:
    await store.write(SMALL)
    by_id = {e.id: e for e in SMALL}
    ids = await all_ids(store, SearchRequest(sort=sort, order=order, limit=3))  # type: ignore[arg-type]
    assert sorted(ids) == sorted(ALL_SMALL)
    values = [getattr(by_id[i], sort) for i in ids]
    present = [v for v in values if v is not None]
    # Missing values come last in both directions (as Elasticsearch does).
    assert values == present + [None] * (len(values) - len(present))
    assert present == sorted(present, reverse=order == "desc")


async def test_default_sort_is_newest_first(store: LogStore) -> None:
    await store.write(SMALL)
    result = await store.search(SearchRequest(limit=3))
    assert [h["id"] for h in result.hits] == ["e09", "e10", "e08"]
    assert result.total == len(SMALL)
    assert result.next_cursor is not None
    tail = await store.search(SearchRequest(limit=100, cursor=result.next_cursor))
    assert len(tail.hits) == len(SMALL) - 3
    assert tail.next_cursor is None
    assert tail.total == len(SMALL)


def bulk_events(count: int, seed: int) -> list[LogEvent]:
    """Many events over three days with heavy ties in every sort field."""
    rng = random.Random(seed)
    base = utc("2024-07-01T20:00:00")
    out = []
    for i in range(count):
        out.append(
            LogEvent(
                # ~3 events share each second, spread over ~3 days
                timestamp=base + timedelta(seconds=(i // 3) * 23),
                level=rng.choice(("INFO", "INFO", "WARNING", "ERROR")),
                service=rng.choice(("api", "web")),
                status_code=rng.choice((200, 404, 500, None)),
                response_time_ms=rng.choice((None, 5.0, 10.0, round(rng.uniform(1, 50), 1))),
                message=f"bulk event {i}",
                source="bulk",
            )
        )
    return out


async def test_deep_paging_10k_without_gaps_or_repeats(store: LogStore) -> None:
    events = bulk_events(10_500, seed=7)
    for start in range(0, len(events), 3500):
        await store.write(events[start : start + 3500])
    expected = {e.id for e in events}
    by_id = {e.id: e for e in events}
    ids = await all_ids(store, SearchRequest(limit=1000))
    assert len(ids) == len(expected) and set(ids) == expected
    stamps = [by_id[i].timestamp for i in ids]
    assert stamps == sorted(stamps, reverse=True)
    # Status codes: four distinct values only, so nearly every page boundary is a tie.
    ids = await all_ids(store, SearchRequest(sort="status_code", order="asc", limit=1000))
    assert len(ids) == len(expected) and set(ids) == expected
    codes = [by_id[i].status_code for i in ids]
    present = [c for c in codes if c is not None]
    assert present == sorted(present) and codes[len(present) :] == [None] * (len(codes) - len(present))
    # A filtered deep page: total is the full match count on every page.
    first = await store.search(SearchRequest(query=parse("level:ERROR"), limit=1000))
    errors = {e.id for e in events if e.level == "ERROR"}
    assert first.total == len(errors)
    assert set(await all_ids(store, SearchRequest(query=parse("level:ERROR"), limit=1000))) == errors


async def test_malformed_cursor_is_rejected(store: LogStore) -> None:
    await store.write(SMALL)
    for bad in ("", "not-a-cursor", "eyJ4IjoxfQ", "%%%%", "a" * 10_000):
        with pytest.raises(ValueError):
            await store.search(SearchRequest(cursor=bad))
    page = await store.search(SearchRequest(limit=2))
    assert page.next_cursor is not None
    with pytest.raises(ValueError):  # made for another sort
        await store.search(SearchRequest(limit=2, sort="status_code", cursor=page.next_cursor))


# --- KPIs -------------------------------------------------------------------------------------------


def kpi_events(seed: int) -> list[LogEvent]:
    """Varied events over three days, with repeated error messages and missing fields."""
    rng = random.Random(seed)
    base = utc("2024-08-10T18:00:00")
    messages = ("db timeout", "disk full", "upstream reset", "db timeout", "db timeout")
    out = []
    for i in range(900):
        level = rng.choice(("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR", "CRITICAL"))
        has_request = rng.random() < 0.85
        out.append(
            LogEvent(
                timestamp=base + timedelta(minutes=i * 5, milliseconds=rng.randrange(60_000)),
                level=level,
                service=rng.choice(("api", "web", "worker", "auth")),
                endpoint=rng.choice(("/a", "/b", "/c", "/d", "/e")) if has_request else None,
                status_code=rng.choice((200, 200, 201, 301, 404, 500, 502, 503)) if has_request else None,
                response_time_ms=round(rng.lognormvariate(3, 1), 3) if has_request else None,
                user_id=f"user{rng.randrange(60)}" if rng.random() < 0.9 else None,
                message=rng.choice(messages) if level in ERROR_LEVELS else f"ok {i}",
                source="http",
            )
        )
    return out


def percentile(values: list[float], p: float) -> float:
    """numpy's default (linear interpolation) percentile."""
    data = sorted(values)
    rank = p / 100 * (len(data) - 1)
    lo, hi = math.floor(rank), math.ceil(rank)
    return data[lo] + (rank - lo) * (data[hi] - data[lo])


def expected_kpis(events: list[LogEvent], interval_ms: int, top_n: int) -> dict[str, Any]:
    """The KPI document computed straight from the events."""
    total = len(events)
    errors = [e for e in events if e.level in ERROR_LEVELS]
    with_status = [e for e in events if e.status_code is not None]
    rts = [e.response_time_ms for e in events if e.response_time_ms is not None]
    endpoints: dict[str, list[LogEvent]] = {}
    for e in events:
        if e.endpoint is not None:
            endpoints.setdefault(e.endpoint, []).append(e)

    def avg(values: list[float]) -> float:
        return sum(values) / len(values)

    slow = sorted(
        endpoints.items(),
        key=lambda kv: (-avg([x.response_time_ms for x in kv[1] if x.response_time_ms is not None]), kv[0]),
    )[:top_n]
    buckets: dict[int, list[int]] = {}
    for e in events:
        ms = int(e.timestamp.timestamp() * 1000)
        slot = buckets.setdefault(ms - ms % interval_ms, [0, 0])
        slot[0] += 1
        slot[1] += e.level in ERROR_LEVELS
    services: dict[str, list[int]] = {}
    for e in events:
        s = services.setdefault(e.service or "", [0, 0])
        s[0] += 1
        s[1] += e.level in ERROR_LEVELS
    return {
        "total_logs": total,
        "error_count": len(errors),
        "error_rate": len(errors) / total if total else 0.0,
        "server_error_rate": (
            sum(1 for e in with_status if (e.status_code or 0) >= 500) / len(with_status) if with_status else 0.0
        ),
        "avg_response_time_ms": avg(rts) if rts else None,
        "p": {p: percentile(rts, p) for p in (50, 95, 99)} if rts else {},
        "active_users": len({e.user_id for e in events if e.user_id is not None}),
        "levels": dict(Counter(e.level for e in events)),
        "status_codes": {str(k): v for k, v in Counter(e.status_code for e in with_status).items()},
        "slowest": [
            (
                name,
                len(evs),
                avg([x.response_time_ms for x in evs if x.response_time_ms is not None]),
                percentile([x.response_time_ms for x in evs if x.response_time_ms is not None], 95),
            )
            for name, evs in slow
        ],
        "buckets": buckets,
        "services": {name: (t, n) for name, (t, n) in services.items()},
        "top_errors": sorted(Counter(e.message for e in errors).items(), key=lambda kv: (-kv[1], kv[0]))[:top_n],
    }


def check_kpis(got: dict[str, Any], exp: dict[str, Any], interval_ms: int) -> None:
    """Counts and averages exact, percentiles within 1 %."""
    assert got["total_logs"] == exp["total_logs"]
    assert got["error_count"] == exp["error_count"]
    assert got["error_rate"] == pytest.approx(exp["error_rate"], rel=1e-12)
    assert got["server_error_rate"] == pytest.approx(exp["server_error_rate"], rel=1e-12)
    if exp["avg_response_time_ms"] is None:
        assert got["avg_response_time_ms"] is None
    else:
        assert got["avg_response_time_ms"] == pytest.approx(exp["avg_response_time_ms"], rel=1e-9)
    for p, value in exp["p"].items():
        assert got[f"p{p}_response_time_ms"] == pytest.approx(value, rel=0.01), p
    assert got["active_users"] == exp["active_users"]
    assert got["levels"] == exp["levels"]
    assert got["status_codes"] == exp["status_codes"]
    assert [s["endpoint"] for s in got["slowest_endpoints"]] == [s[0] for s in exp["slowest"]]
    for row, (_, count, mean, p95) in zip(got["slowest_endpoints"], exp["slowest"], strict=True):
        assert row["count"] == count
        assert row["avg_response_time_ms"] == pytest.approx(mean, rel=1e-9)
        assert row["p95_response_time_ms"] == pytest.approx(p95, rel=0.01)
    timeline = got["events_over_time"]
    nonzero = {
        int(datetime.fromisoformat(b["timestamp"].replace("Z", "+00:00")).timestamp() * 1000): [b["count"], b["errors"]]
        for b in timeline
        if b["count"]
    }
    assert nonzero == exp["buckets"]
    stamps = [b["timestamp"] for b in timeline]
    assert all(s.endswith("Z") for s in stamps)
    if timeline:
        first = datetime.fromisoformat(stamps[0].replace("Z", "+00:00"))
        assert stamps == [format_timestamp(first + timedelta(milliseconds=interval_ms * i)) for i in range(len(stamps))]
    assert [b["count"] for b in got["errors_over_time"]] == [b["errors"] for b in timeline]
    assert {s["service"]: (s["total"], s["errors"]) for s in got["error_rate_by_service"]} == exp["services"]
    for s in got["error_rate_by_service"]:
        assert s["error_rate"] == pytest.approx(s["errors"] / s["total"], rel=1e-12)
    assert [(t["message"], t["count"]) for t in got["top_errors"]] == exp["top_errors"]


async def test_stats_match_values_computed_from_the_events(store: LogStore) -> None:
    events = kpi_events(seed=3)
    await store.write(events[:400])
    await store.write(events[400:])
    interval = 3_600_000
    got = await store.stats(StatsRequest(interval_ms=interval, top_n=3))
    assert got["interval_ms"] == interval
    check_kpis(got, expected_kpis(events, interval, 3), interval)


async def test_stats_with_query_and_filters(store: LogStore) -> None:
    events = kpi_events(seed=5)
    await store.write(events)
    t_from, t_to = utc("2024-08-11T06:00:00"), utc("2024-08-12T09:30:00")
    filters = Filters(services=("api", "web"), status_codes=("2xx", "5xx"), time_from=t_from, time_to=t_to)
    query = parse("-level:DEBUG")
    chosen = [
        e
        for e in events
        if e.service in ("api", "web")
        and e.status_code is not None
        and (200 <= e.status_code <= 299 or 500 <= e.status_code <= 599)
        and t_from <= e.timestamp < t_to
        and e.level != "DEBUG"
    ]
    assert chosen
    interval = 900_000
    got = await store.stats(StatsRequest(query=query, filters=filters, interval_ms=interval, top_n=10))
    check_kpis(got, expected_kpis(chosen, interval, 10), interval)


async def test_stats_of_nothing(store: LogStore) -> None:
    got = await store.stats(StatsRequest())
    assert got["total_logs"] == 0 and got["error_count"] == 0
    assert got["error_rate"] == 0.0 and got["server_error_rate"] == 0.0
    assert got["avg_response_time_ms"] is None and got["p95_response_time_ms"] is None
    assert got["active_users"] == 0
    assert got["levels"] == {} and got["events_over_time"] == [] and got["top_errors"] == []
    await store.write(SMALL)
    none = await store.stats(StatsRequest(query=parse("nonexistentword")))
    assert none["total_logs"] == 0 and none["slowest_endpoints"] == []


async def test_stats_interval_is_widened_not_exploded(store: LogStore) -> None:
    await store.write(SMALL)
    got = await store.stats(StatsRequest(interval_ms=1))
    assert len(got["events_over_time"]) <= 2000
    assert got["interval_ms"] > 1
    assert sum(b["count"] for b in got["events_over_time"]) == len(SMALL)


# --- deletes and retention ---------------------------------------------------------------------------


async def test_delete_by_source(store: LogStore) -> None:
    await store.write(SMALL)
    assert await store.delete_by_source("upload:f1") == 2
    assert await ids_of(store, "") == ALL_SMALL - {"e03", "e05"}
    assert await store.delete_by_source("upload:f1") == 0
    assert await store.delete_by_source("nothing") == 0
    stats = await store.stats(StatsRequest())
    assert stats["total_logs"] == len(SMALL) - 2
    assert await store.distinct_values("source", prefix="upload:f1") == []
    assert await store.distinct_values("source", prefix="upload") == ["upload:f2"]


async def test_retention_across_day_boundaries(store: LogStore) -> None:
    await store.write(SMALL)
    # Nothing is older than the first event.
    assert await store.delete_older_than(utc("2024-05-01T23:59:59.999")) == 0
    # Whole day 2024-05-01 plus the part of 05-02 before 12:00 (e02, e03); e04/e05 are at 12:00.
    assert await store.delete_older_than(utc("2024-05-02T12:00:00")) == 3
    assert await ids_of(store, "") == ALL_SMALL - {"e01", "e02", "e03"}
    assert await store.get("e01") is None
    # Everything before 05-04: the rest.
    assert await store.delete_older_than(utc("2024-05-04T00:00:00")) == len(SMALL) - 3
    assert await ids_of(store, "") == set()
    # The store keeps working after whole days were dropped.
    await store.write(SMALL[:2])
    assert await ids_of(store, "") == {"e01", "e02"}


# --- autocomplete and health -------------------------------------------------------------------------


async def test_distinct_values(store: LogStore) -> None:
    await store.write(SMALL)
    assert await store.distinct_values("service") == ["api", "web", "worker"]  # 4, 4, 2: ties by name
    assert await store.distinct_values("service", prefix="w") == ["web", "worker"]
    assert await store.distinct_values("service", limit=1) == ["api"]
    assert await store.distinct_values("endpoint", prefix="/api/o") == ["/api/orders", "/api/orders/42"]
    assert await store.distinct_values("attrs.region") == ["eu-west", "us-east", "ap-south"]
    assert await store.distinct_values("level", prefix="nope") == []
    with pytest.raises(ValueError):
        await store.distinct_values("message")


async def test_health(store: LogStore) -> None:
    await store.write(SMALL)
    result = await store.health()
    assert result.status == "healthy"
    if isinstance(store, TantivyLogStore):
        assert result.details["days"] == 3
        assert result.details["docs"] == len(SMALL)
        assert result.details["bytes"] > 0
