"""Fixtures for the ingest tests: the real app (lifespan run), real Redis, real SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from redis.asyncio import Redis

from services.ingest.app import create_app
from shared.bus import STREAM
from shared.internal import Principal
from shared.settings import Settings
from shared.store.records import FileRecord
from tests.helpers import async_wait_until, free_port

ADMIN = Principal(kind="user", id="u-admin", name="admin", role="admin", scopes=frozenset())
ANALYST = Principal(kind="user", id="u-analyst", name="analyst", role="analyst", scopes=frozenset())
TENANT_KEY = Principal(kind="key", id="k-acme", name="acme-key", scopes=frozenset({"ingest", "read"}), tenant_id="acme")


def make_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings for one ingest test: temp data, private Redis, listeners off unless asked."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "redis_url": redis_url,
        "internal_token": secrets.token_hex(32),
        "tcp_port": 0,
        "syslog_port": 0,
        "query_url": f"http://127.0.0.1:{free_port()}",  # nobody listens: query is "down"
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def running_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The ingest app with its lifespan running."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, settings: Settings, principal: Principal | None = ADMIN) -> httpx.AsyncClient:
    """An httpx client on the app in-process, sending the internal token and the principal."""
    token = settings.internal_token.get_secret_value()
    headers = principal.headers(token) if principal else {"x-logwarden-internal-token": token}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://ingest", headers=headers, timeout=30
    )


@pytest.fixture
def ingest_settings(tmp_path: Path, redis_url: str) -> Settings:
    """Default settings of the app under test."""
    return make_settings(tmp_path, redis_url)


@pytest.fixture
async def app(ingest_settings: Settings, redis: Redis) -> AsyncIterator[FastAPI]:
    """The ingest app (Redis flushed first by the ``redis`` fixture)."""
    del redis
    async with running_app(ingest_settings) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI, ingest_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """An admin client on the app."""
    async with client_for(app, ingest_settings) as http:
        yield http


async def stream_events(redis: Redis) -> list[dict[str, Any]]:
    """Every event on the stream, in order (wire dicts)."""
    events: list[dict[str, Any]] = []
    for _, fields in await redis.xrange(STREAM):
        events.extend(orjson.loads(fields[b"events"]))
    return events


async def wait_for_events(redis: Redis, count: int, *, timeout: float = 15) -> list[dict[str, Any]]:
    """Poll the stream until it holds at least ``count`` events."""

    async def enough() -> list[dict[str, Any]] | None:
        events = await stream_events(redis)
        return events if len(events) >= count else None

    return await async_wait_until(enough, timeout=timeout, what=f"{count} events on the stream")


async def wait_for_file(
    http: httpx.AsyncClient,
    file_id: str,
    statuses: tuple[str, ...] = ("processing", "failed", "indexed"),
    *,
    done: bool = True,
    timeout: float = 20,
) -> dict[str, Any]:
    """Poll GET /api/files/{id} until ingest finished with it (final records_count or failed)."""

    async def finished() -> dict[str, Any] | None:
        response = await http.get(f"/api/files/{file_id}")
        body: dict[str, Any] = response.json()
        if body.get("status") == "failed":
            return body
        if body.get("status") in statuses and (not done or body.get("format")):
            return body if not done or await _ingest_done(http, file_id) else None
        return None

    return await async_wait_until(finished, timeout=timeout, what=f"file {file_id} to be processed")


async def _ingest_done(http: httpx.AsyncClient, file_id: str) -> bool:
    runtime = http._transport.app.state.ingest  # type: ignore[attr-defined]
    return runtime.uploads.task(file_id) is None


async def get_record(app: FastAPI, file_id: str) -> FileRecord | None:
    """The FileRecord straight from the MetaStore."""
    record: FileRecord | None = await app.state.ingest.meta.get_file(file_id)
    return record


UvicornFactory = Callable[[FastAPI], Awaitable[str]]


@pytest.fixture
async def serve() -> AsyncIterator[UvicornFactory]:
    """Run apps under a real uvicorn server on free ports; returns their base URL."""
    servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(application: FastAPI) -> str:
        port = free_port()
        config = uvicorn.Config(application, host="127.0.0.1", port=port, lifespan="on", log_config=None)
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve())
        servers.append((server, task))

        async def started() -> bool:
            assert not task.done(), "uvicorn exited"
            return server.started

        await async_wait_until(started, timeout=15, what="uvicorn to start")
        return f"http://127.0.0.1:{port}"

    yield start
    for server, task in servers:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
