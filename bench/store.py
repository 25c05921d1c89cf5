"""LogStore benchmark (embedded tantivy backend): write throughput, size on disk, query latency.

    .venv/bin/python -m bench.store --events 200000

Generates realistic events with ``shared.generator.generate_events``, writes them in
batches of 5,000 into a fresh ``TantivyLogStore`` in a temporary directory, then times
a term search, a phrase search, a filtered search and the full ``/api/stats``
aggregation. Prints a markdown table (see docs/benchmarks.md, "Store").
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.generator import generate_events
from shared.models import LogEvent
from shared.querylang.parser import parse
from shared.store.base import Filters, SearchRequest, StatsRequest
from shared.store.tantivy_store import TantivyLogStore

BATCH = 5000
END = datetime(2024, 6, 1, tzinfo=UTC)


def _dir_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            total += os.path.getsize(os.path.join(root, name))
    return total


def _percentile(values: list[float], p: float) -> float:
    data = sorted(values)
    rank = p / 100 * (len(data) - 1)
    lo = int(rank)
    hi = min(lo + 1, len(data) - 1)
    return data[lo] + (rank - lo) * (data[hi] - data[lo])


async def _timed(fn: Callable[[], Awaitable[Any]], runs: int) -> tuple[float, float, Any]:
    await fn()  # warm-up (opens readers, fills the page cache)
    samples = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return _percentile(samples, 50), _percentile(samples, 99), result


async def run(events: int, days: float, runs: int, seed: int, keep: Path | None) -> str:
    """Run the benchmark and return the markdown report."""
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
        root = keep or Path(tmp)
        store = TantivyLogStore(root / "logs")
        await store.open()
        raw_bytes = 0
        write_s = 0.0
        batch: list[LogEvent] = []
        generated = 0
        for event in generate_events(count=events, days=days, seed=seed, end=END):
            batch.append(event)
            if len(batch) == BATCH:
                raw_bytes += sum(len(e.to_json()) + 1 for e in batch)
                started = time.perf_counter()
                await store.write(batch)
                write_s += time.perf_counter() - started
                generated += len(batch)
                batch = []
        if batch:
            raw_bytes += sum(len(e.to_json()) + 1 for e in batch)
            started = time.perf_counter()
            await store.write(batch)
            write_s += time.perf_counter() - started
            generated += len(batch)
        await store.close()  # finishes merges, so the size below is the settled size
        disk = _dir_bytes(root / "logs")
        store = TantivyLogStore(root / "logs")
        await store.open()

        last_day = Filters(
            services=("orders",),
            status_codes=("5xx",),
            time_from=END - timedelta(days=1),
            time_to=END,
        )
        cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            ("term `level:ERROR` (limit 50)", lambda: store.search(SearchRequest(query=parse("level:ERROR")))),
            (
                'phrase `"connection pool exhausted"` (limit 50)',
                lambda: store.search(SearchRequest(query=parse('"connection pool exhausted"'))),
            ),
            (
                "filtered: service + 5xx + last 24 h (limit 50)",
                lambda: store.search(SearchRequest(filters=last_day)),
            ),
            (
                "deep page: 10th page of 1000, sorted by status_code",
                lambda: _deep_page(store),
            ),
            ("full `/api/stats` (all events, 1 h buckets)", lambda: store.stats(StatsRequest())),
        ]
        rows = []
        for name, fn in cases:
            p50, p99, result = await _timed(fn, runs if "stats" not in name else max(5, runs // 5))
            matched = getattr(result, "total", None)
            if matched is None and isinstance(result, dict):
                matched = result.get("total_logs")
            rows.append((name, p50, p99, matched))
        await store.close()

    lines = [
        f"- events: {generated:,} over {days:g} days (`shared.generator`, seed {seed}), batches of {BATCH:,}",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}",
        "",
        "| metric | value |",
        "|---|---|",
        f"| write throughput | {generated / write_s:,.0f} events/s ({write_s:.1f} s) |",
        f"| raw NDJSON | {raw_bytes / generated:,.0f} bytes/event |",
        f"| on disk (settled) | {disk / generated:,.0f} bytes/event ({disk / 1e6:,.1f} MB) |",
        f"| disk / raw ratio | {disk / raw_bytes:.2f} |",
        "",
        "| query | p50 ms | p99 ms | matched |",
        "|---|---|---|---|",
    ]
    for name, p50, p99, matched in rows:
        lines.append(f"| {name} | {p50:.1f} | {p99:.1f} | {matched if matched is not None else ''} |")
    return "\n".join(lines)


async def _deep_page(store: TantivyLogStore) -> Any:
    cursor = None
    result = None
    for _ in range(10):
        result = await store.search(SearchRequest(sort="status_code", order="asc", limit=1000, cursor=cursor))
        cursor = result.next_cursor
    return result


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, default=None, help="index here instead of a temp dir (kept)")
    args = parser.parse_args()
    print(asyncio.run(run(args.events, args.days, args.runs, args.seed, args.keep)))


if __name__ == "__main__":
    main()
