"""Through the gateway of a real `logwarden up`: posted and uploaded events become searchable fast,
and search, paging and stats agree with the test's own computation from the same events."""

from __future__ import annotations

import io
import math
import secrets
import time
from collections import Counter
from typing import Any

import httpx
import orjson
import pytest

from shared.generator import generate_events, write_events
from shared.models import LogEvent
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def unique(events: list[LogEvent], tag: str) -> list[LogEvent]:
    """The events with a per-test service and tenant, so tests sharing the platform never see each other's data."""
    return [e.model_copy(update={"service": f"{tag}-{e.service}", "tenant_id": tag}) for e in events]


def all_hits(client: httpx.Client, params: dict[str, Any]) -> list[dict[str, Any]]:
    hits: list[dict[str, Any]] = []
    cursor = None
    while True:
        response = client.get("/api/search", params={**params, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        hits.extend(body["hits"])
        cursor = body["next_cursor"]
        if cursor is None:
            return hits


def wait_searchable(client: httpx.Client, params: dict[str, Any], count: int, *, started: float, within: float) -> None:
    def ready() -> bool:
        return bool(client.get("/api/search", params={**params, "limit": 1}).json()["total"] == count)

    wait_until(ready, timeout=within + 30, interval=0.05, what=f"{count} events to be searchable")
    elapsed = time.monotonic() - started
    assert elapsed < within, f"searchable after {elapsed:.2f}s (limit {within}s)"


def check_search_and_stats(client: httpx.Client, events: list[LogEvent], tag: str) -> None:
    base = {"tenant_id": tag}
    # filters and the query language
    errors = [e for e in events if e.level in {"ERROR", "CRITICAL"}]
    assert client.get("/api/search", params={**base, "level": ["ERROR", "CRITICAL"]}).json()["total"] == len(errors)
    five = [e for e in events if (e.status_code or 0) >= 500]
    assert client.get("/api/search", params={**base, "status_code": "5xx"}).json()["total"] == len(five)
    assert client.get("/api/logs", params={**base, "q": "status_code:>=500"}).json()["total"] == len(five)
    endpoint = events[0].endpoint
    on_endpoint = [e for e in events if e.endpoint == endpoint]
    q = f'endpoint:"{endpoint}" AND NOT level:DEBUG'
    want = [e for e in on_endpoint if e.level != "DEBUG"]
    assert client.get("/api/search", params={**base, "q": q}).json()["total"] == len(want)
    # sort and cursor paging: every event once
    hits = all_hits(client, {**base, "sort": "response_time_ms", "order": "asc", "limit": 97})
    assert len(hits) == len(events) == len({h["id"] for h in hits})
    times = [h["response_time_ms"] for h in hits]
    assert times == sorted(times)
    assert sorted(times) == sorted(e.response_time_ms for e in events)
    one = client.get(f"/api/logs/{hits[0]['id']}")
    assert one.status_code == 200 and one.json()["id"] == hits[0]["id"]
    # stats against our own computation
    stats = client.get("/api/stats", params=base).json()
    assert stats["total_logs"] == len(events)
    assert stats["error_count"] == len(errors)
    assert math.isclose(stats["error_rate"], len(errors) / len(events))
    assert math.isclose(stats["server_error_rate"], len(five) / len(events))
    rts = [e.response_time_ms or 0.0 for e in events]
    assert math.isclose(stats["avg_response_time_ms"], sum(rts) / len(rts), rel_tol=1e-6)
    assert stats["levels"] == dict(Counter(e.level for e in events))
    assert stats["status_codes"] == {str(k): v for k, v in Counter(e.status_code for e in events).items()}
    assert stats["active_users"] == len({e.user_id for e in events})
    assert sum(b["count"] for b in stats["events_over_time"]) == len(events)


def test_posted_events_are_searchable_within_2s(admin_client: httpx.Client) -> None:
    tag = f"e2e-{secrets.token_hex(4)}"
    events = unique(list(generate_events(count=600, days=1, seed=5)), tag)
    body = b"".join(
        orjson.dumps({k: v for k, v in e.to_dict().items() if k not in {"id", "source"}}) + b"\n" for e in events
    )
    started = time.monotonic()
    response = admin_client.post("/api/logs", content=body, headers={"Content-Type": "application/x-ndjson"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)
    wait_searchable(admin_client, {"tenant_id": tag}, len(events), started=started, within=2.0)
    check_search_and_stats(admin_client, events, tag)


def test_uploaded_csv_is_searchable_and_the_file_indexed(admin_client: httpx.Client) -> None:
    tag = f"e2e-{secrets.token_hex(4)}"
    events = unique(list(generate_events(count=800, days=2, seed=9)), tag)
    buffer = io.BytesIO()
    write_events(events, buffer, "csv")
    started = time.monotonic()
    response = admin_client.post("/api/upload", files={"file": (f"{tag}.csv", buffer.getvalue(), "text/csv")})
    assert response.status_code == 202, response.text
    [record] = response.json()["files"]
    wait_searchable(admin_client, {"tenant_id": tag}, len(events), started=started, within=2.0)

    def indexed() -> dict[str, Any] | None:
        current = admin_client.get(f"/api/files/{record['id']}").json()
        return current if current["status"] == "indexed" else None

    final = wait_until(indexed, timeout=10, what="the file to be marked indexed")
    assert final["records_count"] == final["indexed_count"] == len(events)
    assert admin_client.get("/api/search", params={"source": f"upload:{record['id']}"}).json()["total"] == len(events)
    check_search_and_stats(admin_client, events, tag)
    # Deleting the file removes its events (ingest -> DELETE /internal/sources/upload:<id>).
    assert admin_client.delete(f"/api/files/{record['id']}").status_code == 200
    assert admin_client.get("/api/search", params={"tenant_id": tag}).json()["total"] == 0


def test_export_and_bad_query_through_the_gateway(admin_client: httpx.Client) -> None:
    tag = f"e2e-{secrets.token_hex(4)}"
    events = unique(list(generate_events(count=50, days=1, seed=2)), tag)
    events[0] = events[0].model_copy(update={"message": '=HYPERLINK("http://evil")'})
    body = orjson.dumps([{k: v for k, v in e.to_dict().items() if k not in {"id", "source"}} for e in events])
    started = time.monotonic()
    assert admin_client.post("/api/logs", content=body, headers={"Content-Type": "application/json"}).status_code == 202
    wait_searchable(admin_client, {"tenant_id": tag}, len(events), started=started, within=2.0)
    export = admin_client.get("/api/export", params={"tenant_id": tag, "format": "csv"})
    assert export.status_code == 200
    lines = export.text.strip().splitlines()
    assert len(lines) == len(events) + 1
    assert "'=HYPERLINK" in export.text and ",=HYPERLINK" not in export.text
    bad = admin_client.get("/api/search", params={"q": "level:ERROR AND ("})
    assert bad.status_code == 400 and bad.json()["error"]["details"]["position"] == 17
