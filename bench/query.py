"""Query benchmark through the gateway of a real platform (`logwarden up`).

    .venv/bin/python -m bench.query --events 1000000

Starts the platform in a temporary data dir, loads generated events (published
straight to the Redis stream in entries of 1,000, the way ingest publishes,
so the real indexer indexes them), waits until the indexer's backlog is 0, creates
a read API key as admin, then times sequential requests through the gateway
with that key: GET /api/health, GET /api/stats (last 24 h, and all time) and
GET /api/search (a term query plus a level filter). "cached" repeats one URL;
"uncached" changes an absolute ``to`` bound on every request (far in the
future, so the same events match) so every request misses the cache. Prints a
markdown table beside the first version's published figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform as host
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from shared import bus
from shared.generator import generate_events
from shared.models import LogEvent

ENTRY_SIZE = 1000
FAR_FUTURE_MS = 4_102_444_800_000  # 2100-01-01
FIRST_VERSION = {"health": (25, 45, 120), "stats": (80, 150, 350), "search": (120, 280, 650)}


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks."""
    data = sorted(values)
    rank = p / 100 * (len(data) - 1)
    low = int(rank)
    high = min(low + 1, len(data) - 1)
    return data[low] + (rank - low) * (data[high] - data[low])


def chunks(events: Iterator[LogEvent], size: int) -> Iterator[list[LogEvent]]:
    """Consecutive lists of ``size`` events."""
    batch: list[LogEvent] = []
    for event in events:
        batch.append(event)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(redis_url: str, count: int, days: float) -> tuple[float, float]:
    """Publish ``count`` events and wait until indexed; returns (publish seconds, total seconds)."""
    redis = Redis.from_url(redis_url)
    try:
        started = time.perf_counter()
        for batch in chunks(generate_events(count=count, days=days, seed=42), ENTRY_SIZE):
            await bus.publish(redis, batch)
        published = time.perf_counter() - started
        while True:  # the indexer acknowledges only after a durable write: 0 means all indexed
            if not await bus.backlog(redis, group="indexer"):
                break
            await asyncio.sleep(0.2)
        return published, time.perf_counter() - started
    finally:
        await redis.aclose()


def measure(client: httpx.Client, requests: int, make_url: Callable[[int], str]) -> list[float]:
    """Latencies (ms) of ``requests`` sequential GETs after 3 warm-up calls; every answer must be 200."""
    for i in range(3):
        assert client.get(make_url(-1 - i)).status_code == 200
    out = []
    for i in range(requests):
        url = make_url(i)
        started = time.perf_counter()
        response = client.get(url)
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return out


def run(args: argparse.Namespace) -> None:
    """Start the platform, load, measure, print."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.e2e.platform import run_platform

    with tempfile.TemporaryDirectory(prefix="bench-query-") as tmp, run_platform(Path(tmp)) as running:
        redis_url = f"unix://{running.data_dir.resolve() / 'redis' / 'redis.sock'}"
        published, loaded = asyncio.run(load(redis_url, args.events, args.days))
        print(
            f"loaded {args.events} events: published in {published:.1f}s, indexed after {loaded:.1f}s "
            f"({args.events / loaded:,.0f} events/s end to end)"
        )
        with httpx.Client(base_url=running.url, timeout=120) as admin:
            login = admin.post(
                "/api/auth/login", json={"username": running.admin_username, "password": running.admin_password}
            )
            login.raise_for_status()
            admin.headers["X-CSRF-Token"] = login.json()["csrf_token"]
            created = admin.post("/api/keys", json={"name": "bench", "scopes": ["read"]})
            created.raise_for_status()
            key = created.json()["key"]
        now_ms = int(datetime.now(UTC).timestamp() * 1000)
        day_ago = now_ms - 86_400_000
        n = args.requests
        cases: list[tuple[str, str, Callable[[int], str]]] = [
            ("health", "GET /api/health", lambda i: "/api/health"),
            ("stats", "GET /api/stats last 24 h, cached", lambda i: f"/api/stats?from={day_ago}"),
            (
                "stats",
                "GET /api/stats last 24 h, uncached",
                lambda i: f"/api/stats?from={day_ago}&to={FAR_FUTURE_MS + i + 10}",
            ),
            ("stats", "GET /api/stats all time, cached", lambda i: "/api/stats"),
            ("stats", "GET /api/stats all time, uncached", lambda i: f"/api/stats?to={FAR_FUTURE_MS + i + 10}"),
            ("search", "GET /api/search term + filter, cached", lambda i: "/api/search?q=timeout&level=ERROR"),
            (
                "search",
                "GET /api/search term + filter, uncached",
                lambda i: f"/api/search?q=timeout&level=ERROR&to={FAR_FUTURE_MS + i + 10}",
            ),
        ]
        rows = []
        with httpx.Client(base_url=running.url, timeout=120, headers={"Authorization": f"Bearer {key}"}) as client:
            total = client.get("/api/search?limit=1").json()["total"]
            matched = client.get("/api/search?q=timeout&level=ERROR&limit=1").json()["total"]
            for kind, label, make_url in cases:
                runs = n if "all time, uncached" not in label else max(10, n // 4)
                latencies = measure(client, runs, make_url)
                rows.append((kind, label, runs, latencies))
    print()
    print(f"indexed: {total} events; `q=timeout&level=ERROR` matches {matched}")
    print(f"machine: {os.cpu_count()} cores {host.machine()}, Python {host.python_version()}")
    print()
    print("| request | runs | p50 ms | p90 ms | p99 ms | first version p50/p90/p99 ms |")
    print("|---|---|---|---|---|---|")
    for kind, label, runs, latencies in rows:
        old = "/".join(str(v) for v in FIRST_VERSION[kind])
        p50, p90, p99 = (percentile(latencies, p) for p in (50, 90, 99))
        print(f"| {label} | {runs} | {p50:.1f} | {p90:.1f} | {p99:.1f} | {old} |")


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0, help="spread the events over the last D days")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per case")
    args: Any = parser.parse_args(argv)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
