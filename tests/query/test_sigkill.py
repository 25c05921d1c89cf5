"""A real `logwarden serve query` process SIGKILLed while indexing loses and duplicates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from shared import bus
from shared.internal import SYSTEM
from shared.models import LogEvent
from tests.helpers import async_wait_until, free_port, repo_root

pytestmark = pytest.mark.slow

N = 20_000
PER_ENTRY = 50


@contextmanager
def query_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """One `logwarden serve query`; killed (if still running) on exit."""
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", "query"],
            env=env,
            cwd=repo_root(),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


async def indexed(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], log_path: Path) -> int:
    """Events the running indexer has written (from its /health details)."""
    assert proc.poll() is None, _tail(log_path)
    response = await client.get("/health")
    if response.status_code != 200:
        return -1
    return int(response.json()["checks"]["indexer"]["details"]["indexed_events"])


async def test_sigkill_mid_indexing_loses_and_duplicates_nothing(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    port = free_port()
    token = os.urandom(32).hex()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env.update(
        {
            "LOGWARDEN_DATA_DIR": str(tmp_path / "data"),
            "LOGWARDEN_REDIS_URL": redis_url,
            "LOGWARDEN_INTERNAL_TOKEN": token,
            "LOGWARDEN_QUERY_PORT": str(port),
            "LOGWARDEN_CLAIM_IDLE_MS": "1000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    log_path = tmp_path / "query.log"
    events = [LogEvent(message=f"kill test {i}", service=f"svc-{i % 7}") for i in range(N)]
    published = 0

    async def publisher() -> None:
        nonlocal published
        for start in range(0, N, PER_ENTRY):
            await bus.publish(redis, events[start : start + PER_ENTRY])
            published = start + PER_ENTRY
            await asyncio.sleep(0.004)  # a steady stream, so the kill lands mid-way

    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, headers=SYSTEM.headers(token), timeout=30) as client:
        with query_process(env, log_path) as first:
            await async_wait_until(
                lambda: _ready(client, first, log_path), timeout=60, interval=0.1, what="query to become ready"
            )
            feeding = asyncio.create_task(publisher())

            async def some_indexed() -> bool:
                return await indexed(client, first, log_path) >= 2_000

            await async_wait_until(some_indexed, timeout=60, interval=0.01, what="some events to be indexed")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            killed_at = published
            assert 0 < killed_at < N, "the process must die with events still to come"
            await asyncio.wait_for(feeding, 60)
        assert await bus.backlog(redis, group="indexer") > 0

        with query_process(env, log_path) as second:
            await async_wait_until(
                lambda: _ready(client, second, log_path), timeout=60, interval=0.1, what="query to restart"
            )

            async def drained() -> bool:
                return await bus.backlog(redis, group="indexer") == 0

            await async_wait_until(drained, timeout=90, interval=0.1, what="the backlog to drain after restart")
            ids: list[str] = []
            cursor = None
            while True:
                params: dict[str, str | int] = {"limit": 1000, "sort": "timestamp", "order": "asc"}
                if cursor:
                    params["cursor"] = cursor
                body = (await client.get("/api/search", params=params)).json()
                ids.extend(hit["id"] for hit in body["hits"])
                cursor = body["next_cursor"]
                if cursor is None:
                    break
            assert body["total"] == N
    assert len(ids) == N, "no event duplicated"
    assert set(ids) == {e.id for e in events}, "no event missing"
    assert await redis.xlen(bus.DEAD_STREAM) == 0


async def _ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], log_path: Path) -> bool:
    assert proc.poll() is None, _tail(log_path)
    try:
        response = await client.get("/health")
    except httpx.TransportError:
        return False
    return response.status_code == 200 and response.json()["status"] == "healthy"


def _tail(log_path: Path) -> str:
    """The end of the process's output, for failure messages (tiny file, read only on failure)."""
    return log_path.read_bytes()[-3000:].decode(errors="replace")
