"""Ingest throughput: parse + publish of uploaded files, through the real upload code path.

Generates events with ``shared.generator`` into NDJSON, CSV and a plain-text
rendering, starts a private redis-server, and runs
``services.ingest.inputs.upload.process_upload`` (the function behind every
upload: worker-thread parsing, bounded hand-off, batched XADD, FileRecord
progress in a real SQLite MetaStore) on each file. Prints a markdown table of
the median of ``--runs`` runs per format.

    .venv/bin/python bench/ingest.py --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from services.ingest.inputs.upload import process_upload
from services.ingest.publish import BacklogGate, Publisher
from shared.generator import generate_events, write_events
from shared.settings import Settings
from shared.store.records import FileRecord
from shared.store.sqlite_meta import SqliteMetaStore
from tests.helpers import running_redis

END = datetime(2024, 6, 1, tzinfo=UTC)


def write_inputs(directory: Path, count: int) -> dict[str, Path]:
    """The three input files of ``count`` events each."""
    paths = {fmt: directory / f"events.{fmt}" for fmt in ("ndjson", "csv")}
    for fmt, path in paths.items():
        with path.open("wb") as handle:
            write_events(generate_events(count=count, seed=1, end=END), handle, fmt)  # type: ignore[arg-type]
    text = directory / "events.log"
    with text.open("w", encoding="utf-8") as handle:
        for event in generate_events(count=count, seed=1, end=END):
            stamp = event.timestamp.strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
            handle.write(f"{stamp} {event.level} {event.service}: {event.message}\n")
    paths["text"] = text
    return paths


async def run_once(path: Path, *, settings: Settings, redis_url: str, work: Path) -> tuple[float, int, str]:
    """One timed process_upload of ``path``: (seconds, events published, detected format)."""
    redis = Redis.from_url(redis_url)
    await redis.flushdb()
    meta = SqliteMetaStore(work / f"meta-{secrets.token_hex(4)}.sqlite3")
    await meta.open()
    size = (await asyncio.to_thread(path.stat)).st_size
    try:
        record = await meta.create_file(FileRecord(filename=path.name, file_size=size, path=str(path)))
        publisher = Publisher(redis, batch_size=settings.publish_batch_size)
        gate = BacklogGate(redis, group=settings.consumer_group, limit=settings.backlog_limit)
        started = time.perf_counter()
        final = await process_upload(record=record, settings=settings, meta=meta, publisher=publisher, gate=gate)
        elapsed = time.perf_counter() - started
        assert final is not None and final.status != "failed", final
        published = sum(int(f[b"count"]) for _, f in await redis.xrange("logwarden:logs"))
        assert published == final.records_count, (published, final.records_count)
        await gate.close()
        return elapsed, published, final.format or "?"
    finally:
        await meta.close()
        await redis.aclose()


async def main_async(args: argparse.Namespace) -> None:
    """Generate, run, print."""
    with tempfile.TemporaryDirectory(prefix="logwarden-bench-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        paths = write_inputs(work, args.events)
        print(f"generated {args.events:,} events x 3 formats in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        (work / "redis").mkdir()
        with running_redis(work / "redis") as redis_url:
            settings = Settings(
                data_dir=work / "data",
                redis_url=redis_url,
                internal_token=secrets.token_hex(32),
                backlog_limit=10**9,  # no consumer here: measure ingest alone
            )
            rows = []
            for name, path in paths.items():
                times = []
                for run in range(args.runs):
                    seconds, published, fmt = await run_once(path, settings=settings, redis_url=redis_url, work=work)
                    times.append(seconds)
                    print(f"{name} run {run + 1}: {seconds:.2f} s, {published:,} events ({fmt})", file=sys.stderr)
                median = statistics.median(times)
                size_mb = path.stat().st_size / 1e6
                rows.append((name, fmt, size_mb, published, median, published / median, size_mb / median))
    print(
        f"\n{args.events:,} events per file, median of {args.runs} runs, batch {settings.publish_batch_size}; "
        f"Python {platform.python_version()}, {platform.machine()}\n"
    )
    print("| input | detected format | file MB | events | seconds | events/s | MB/s |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, fmt, size_mb, published, median, eps, mbps in rows:
        print(f"| {name} | {fmt} | {size_mb:.1f} | {published:,} | {median:.2f} | {eps:,.0f} | {mbps:.1f} |")


def main() -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="events per file (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per format; the median is reported")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
