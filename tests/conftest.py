"""Session-wide fixtures: a private redis-server, settings in temp dirs, per-test clean Redis."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from shared.settings import Settings
from tests.e2e.platform import Platform, run_platform
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


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """One real `logwarden up` shared by the end-to-end, query and browser tests of a session.

    Tests share its data, so each one scopes what it checks with its own tenant,
    service or message values.
    """
    # Every test logs in from 127.0.0.1; the login rate limit has its own tests.
    with run_platform(tmp_path_factory.mktemp("platform"), LOGWARDEN_LOGIN_ATTEMPTS_PER_MINUTE="100") as running:
        yield running


@pytest.fixture(scope="session")
def admin_login(platform: Platform) -> tuple[dict[str, str], str]:
    """Cookies and CSRF token of one admin session (logins are rate limited per address)."""
    response = httpx.post(
        f"{platform.url}/api/auth/login",
        json={"username": platform.admin_username, "password": platform.admin_password},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    return dict(response.cookies.items()), response.json()["csrf_token"]


@pytest.fixture
def admin_client(platform: Platform, admin_login: tuple[dict[str, str], str]) -> Iterator[httpx.Client]:
    """An httpx client with the admin session's cookies and CSRF header."""
    cookies, csrf = admin_login
    with httpx.Client(base_url=platform.url, timeout=30, cookies=cookies, headers={"X-CSRF-Token": csrf}) as client:
        yield client
