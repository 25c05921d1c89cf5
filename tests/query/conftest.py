"""Fixtures for the query service tests: the real app (lifespan + indexer) on real Redis, tantivy and SQLite.

Events always reach the store through the real path: published to the stream,
consumed by the indexer running in the app's lifespan, written, acknowledged.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.query.app import create_app
from shared import bus
from shared.internal import Principal
from shared.models import LogEvent
from shared.settings import Settings
from tests.helpers import async_wait_until, free_port

ADMIN = Principal(kind="user", id="user-admin", name="admin", role="admin")
ANALYST = Principal(kind="user", id="user-analyst", name="analyst", role="analyst")

ClientFactory = Callable[..., httpx.AsyncClient]


def make_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings for one query app in a temp dir on the session's Redis."""
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "redis_url": redis_url,
        "internal_token": secrets.token_hex(32),
        "claim_idle_ms": 200,
        "query_port": free_port(),
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def query_settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings of the query app under test."""
    return make_settings(tmp_path, redis_url)


@pytest.fixture
async def query_app(query_settings: Settings, redis: Redis) -> AsyncIterator[FastAPI]:
    """The query app with its lifespan (store, metadata, indexer) running; Redis flushed first."""
    del redis
    app = create_app(query_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client_for(query_app: FastAPI, query_settings: Settings) -> AsyncIterator[ClientFactory]:
    """Clients that call the app as the gateway would for a principal (None: token only)."""
    opened: list[httpx.AsyncClient] = []
    token = query_settings.internal_token.get_secret_value()

    def make(principal: Principal | None = ADMIN, *, token_header: bool = True) -> httpx.AsyncClient:
        headers: dict[str, str] = {}
        if principal is not None:
            headers = principal.headers(token)
        elif token_header:
            headers = {"x-logwarden-internal-token": token}
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=query_app), base_url="http://query", headers=headers, timeout=60
        )
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


@pytest.fixture
async def admin(client_for: ClientFactory) -> httpx.AsyncClient:
    """A client calling as an admin user."""
    return client_for(ADMIN)


async def index_events(
    redis: Redis, events: Sequence[LogEvent], *, per_entry: int = 100, group: str = "indexer", timeout: float = 30
) -> None:
    """Publish ``events`` (``per_entry`` per stream entry) and wait until the indexer acknowledged all.

    The indexer acknowledges only after the store committed, so a zero backlog
    means every event is searchable.
    """
    for start in range(0, len(events), per_entry):
        await bus.publish(redis, events[start : start + per_entry])

    async def drained() -> bool:
        return await bus.backlog(redis, group=group) == 0

    await async_wait_until(drained, timeout=timeout, interval=0.02, what="the indexer to drain the stream")


async def search_all(
    client: httpx.AsyncClient, params: dict[str, Any], *, path: str = "/api/search"
) -> list[dict[str, Any]]:
    """Every hit of a search, following next_cursor (asserts each page is 200)."""
    hits: list[dict[str, Any]] = []
    cursor = None
    while True:
        page_params = dict(params)
        if cursor:
            page_params["cursor"] = cursor
        response = await client.get(path, params=page_params)
        assert response.status_code == 200, response.text
        body = response.json()
        hits.extend(body["hits"])
        cursor = body["next_cursor"]
        if cursor is None:
            return hits
