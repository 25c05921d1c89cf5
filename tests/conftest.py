"""Session-wide fixtures: a private redis-server, settings in temp dirs, per-test clean Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.settings import Settings
from tests.helpers import running_redis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a redis-server started for this test session."""
    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    """A client on the private Redis, flushed before each test."""
    client = Redis.from_url(redis_url)
    await client.flushdb()
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings pointing at temp data and the private Redis."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        internal_token=secrets.token_hex(32),
        claim_idle_ms=200,
    )
