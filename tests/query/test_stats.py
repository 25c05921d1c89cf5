"""GET /api/stats: every KPI checked against the test's own computation from the same events."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import httpx
from redis.asyncio import Redis

from shared.models import LogEvent, epoch_ms, format_timestamp, from_epoch_ms
from tests.query.conftest import index_events
from tests.query.data import BASE, make_events


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    rank = p / 100 * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (rank - low) * (ordered[high] - ordered[low])


def close(actual: float | None, wanted: float, rel: float = 0.01) -> bool:
    return actual is not None and abs(actual - wanted) <= rel * abs(wanted)


def truth(events: list[LogEvent], interval_ms: int) -> dict[str, Any]:
    """The KPI document computed in plain Python."""
    errors = [e for e in events if e.level in {"ERROR", "CRITICAL"}]
    with_status = [e for e in events if e.status_code is not None]
    times = [e.response_time_ms for e in events if e.response_time_ms is not None]
    by_endpoint: dict[str, list[LogEvent]] = defaultdict(list)
    for e in events:
        if e.endpoint:
            by_endpoint[e.endpoint].append(e)
    slowest = []
    for name, group in by_endpoint.items():
        rts = [e.response_time_ms for e in group if e.response_time_ms is not None]
        slowest.append({"endpoint": name, "count": len(group), "avg": sum(rts) / len(rts), "p95": percentile(rts, 95)})
    slowest.sort(key=lambda s: (-s["avg"], s["endpoint"]))
    services = []
    for name in sorted({e.service for e in events if e.service}):
        group = [e for e in events if e.service == name]
        n_err = sum(1 for e in group if e.level in {"ERROR", "CRITICAL"})
        services.append({"service": name, "total": len(group), "errors": n_err, "error_rate": n_err / len(group)})
    services.sort(key=lambda s: (-s["errors"], -s["error_rate"], s["service"]))
    buckets: dict[int, list[LogEvent]] = defaultdict(list)
    for e in events:
        buckets[epoch_ms(e.timestamp) // interval_ms * interval_ms].append(e)

    def bucket(key: int) -> dict[str, Any]:
        group = buckets.get(key, [])
        rts = [e.response_time_ms for e in group if e.response_time_ms is not None]
        return {
            "timestamp": format_timestamp(from_epoch_ms(key)),
            "count": len(group),
            "errors": sum(1 for e in group if e.level in {"ERROR", "CRITICAL"}),
            "levels": dict(sorted(Counter(e.level for e in group).items())),
            "avg_response_time_ms": sum(rts) / len(rts) if rts else None,
            "p50_response_time_ms": percentile(rts, 50) if rts else None,
            "p95_response_time_ms": percentile(rts, 95) if rts else None,
            "p99_response_time_ms": percentile(rts, 99) if rts else None,
        }

    timeline = [bucket(k) for k in range(min(buckets), max(buckets) + interval_ms, interval_ms)]
    top = Counter(e.message for e in errors)
    return {
        "total_logs": len(events),
        "error_count": len(errors),
        "error_rate": len(errors) / len(events),
        "server_error_rate": sum(1 for e in with_status if (e.status_code or 0) >= 500) / len(with_status),
        "avg_response_time_ms": sum(times) / len(times),
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "p99": percentile(times, 99),
        "active_users": len({e.user_id for e in events if e.user_id}),
        "levels": dict(Counter(e.level for e in events)),
        "status_codes": {str(k): v for k, v in Counter(e.status_code for e in with_status).items()},
        "slowest": slowest[:10],
        "services": services,
        "timeline": timeline,
        "top_errors": [{"message": m, "count": n} for m, n in sorted(top.items(), key=lambda i: (-i[1], i[0]))[:10]],
    }


def dataset() -> list[LogEvent]:
    events = make_events(400, seed=11)
    # repeated error messages, so top_errors has a real ranking
    for i in range(6):
        events.append(LogEvent(timestamp=BASE - timedelta(minutes=i), level="ERROR", message="db down", service="auth"))
    for i in range(3):
        events.append(LogEvent(timestamp=BASE - timedelta(minutes=i), level="CRITICAL", message="disk full"))
    return events


def check(body: dict[str, Any], want: dict[str, Any]) -> None:
    for key in ("total_logs", "error_count", "active_users", "levels", "status_codes"):
        assert body[key] == want[key], key
    for key in ("error_rate", "server_error_rate", "avg_response_time_ms"):
        assert math.isclose(body[key], want[key], rel_tol=1e-9), key
    assert close(body["p50_response_time_ms"], want["p50"])
    assert close(body["p95_response_time_ms"], want["p95"])
    assert close(body["p99_response_time_ms"], want["p99"])
    assert [s["endpoint"] for s in body["slowest_endpoints"]] == [s["endpoint"] for s in want["slowest"]]
    for got, exp in zip(body["slowest_endpoints"], want["slowest"], strict=True):
        assert got["count"] == exp["count"]
        assert math.isclose(got["avg_response_time_ms"], exp["avg"], rel_tol=1e-9)
        assert close(got["p95_response_time_ms"], exp["p95"])
    assert len(body["error_rate_by_service"]) == len(want["services"])
    for got, exp in zip(body["error_rate_by_service"], want["services"], strict=True):
        assert (got["service"], got["total"], got["errors"]) == (exp["service"], exp["total"], exp["errors"])
        assert math.isclose(got["error_rate"], exp["error_rate"], rel_tol=1e-9)
    assert body["top_errors"] == want["top_errors"]
    exact = ("timestamp", "count", "errors", "levels")
    assert [{k: b[k] for k in exact} for b in body["events_over_time"]] == [
        {k: b[k] for k in exact} for b in want["timeline"]
    ]
    for got_bucket, want_bucket in zip(body["events_over_time"], want["timeline"], strict=True):
        if want_bucket["avg_response_time_ms"] is None:
            assert got_bucket["p95_response_time_ms"] is None
            continue
        assert math.isclose(got_bucket["avg_response_time_ms"], want_bucket["avg_response_time_ms"], rel_tol=1e-9)
        for p in (50, 95, 99):  # per-bucket percentiles use 5 %-wide histogram buckets
            key = f"p{p}_response_time_ms"
            assert math.isclose(got_bucket[key], want_bucket[key], rel_tol=0.03), (key, got_bucket, want_bucket)
    assert body["errors_over_time"] == [{"timestamp": b["timestamp"], "count": b["errors"]} for b in want["timeline"]]


async def test_stats_match_own_computation(admin: httpx.AsyncClient, redis: Redis) -> None:
    events = dataset()
    await index_events(redis, events, per_entry=50)
    response = await admin.get("/api/stats", params={"interval": "1h"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["interval_ms"] == 3_600_000
    check(body, truth(events, 3_600_000))
    assert body["top_errors"][:2] == [{"message": "db down", "count": 6}, {"message": "disk full", "count": 3}]


async def test_stats_with_filters_and_query(admin: httpx.AsyncClient, redis: Redis) -> None:
    events = dataset()
    await index_events(redis, events, per_entry=50)
    start, end = BASE - timedelta(hours=30), BASE - timedelta(hours=6)
    chosen = [e for e in events if e.tenant_id == "acme" and e.level != "DEBUG" and start <= e.timestamp < end]
    params = {
        "tenant_id": "acme",
        "q": "NOT level:DEBUG",
        "from": format_timestamp(start),
        "to": format_timestamp(end),
        "interval": "30m",
    }
    body = (await admin.get("/api/stats", params=params)).json()
    check(body, truth(chosen, 1_800_000))


async def test_interval_auto_choice(admin: httpx.AsyncClient, redis: Redis) -> None:
    events = dataset()
    await index_events(redis, events, per_entry=50)
    # No range: the data's span (~60 h) / 60 -> 1 h buckets.
    assert (await admin.get("/api/stats")).json()["interval_ms"] == 3_600_000
    # An explicit 15-minute range -> 15 s buckets.
    params = {"from": format_timestamp(BASE - timedelta(minutes=15)), "to": format_timestamp(BASE)}
    assert (await admin.get("/api/stats", params=params)).json()["interval_ms"] == 15_000
    # A 7-day range -> 3 h buckets (7 d / 60 = 2.8 h).
    params = {"from": format_timestamp(BASE - timedelta(days=7)), "to": format_timestamp(BASE)}
    assert (await admin.get("/api/stats", params=params)).json()["interval_ms"] == 10_800_000
    # Explicit intervals in units or milliseconds.
    assert (await admin.get("/api/stats", params={"interval": "1d"})).json()["interval_ms"] == 86_400_000
    assert (await admin.get("/api/stats", params={"interval": "7200000"})).json()["interval_ms"] == 7_200_000
    for bad in ("0", "soon", "-5m", "9999d"):
        response = await admin.get("/api/stats", params={"interval": bad})
        assert response.status_code == 400, bad


async def test_stats_of_nothing(admin: httpx.AsyncClient, redis: Redis) -> None:
    await index_events(redis, [LogEvent(message="only one", level="INFO")])
    body = (await admin.get("/api/stats", params={"q": "nomatch"})).json()
    assert body["total_logs"] == 0 and body["error_rate"] == 0.0 and body["events_over_time"] == []
    assert body["avg_response_time_ms"] is None
