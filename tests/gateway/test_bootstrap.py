"""The first admin: from the environment, or random and shown once; safe when processes race."""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from services.gateway.app import create_app
from services.gateway.auth.security import verify_password
from services.gateway.auth.service import ensure_first_admin
from shared.settings import Settings
from shared.store.sqlite_meta import SqliteMetaStore
from tests.gateway.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, BASE_URL, make_settings


def bare_settings(tmp_path: Path, redis_url: str, **overrides: object) -> Settings:
    """Settings with no admin credentials in the environment."""
    return Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_url,
        internal_token=secrets.token_hex(32),
        **overrides,  # type: ignore[arg-type]
    )


async def test_first_admin_from_environment(tmp_path: Path, redis_url: str) -> None:
    """LOGWARDEN_ADMIN_USERNAME/PASSWORD make the first admin; nothing to print; idempotent."""
    settings = make_settings(tmp_path, redis_url)
    meta = SqliteMetaStore(tmp_path / "meta.sqlite3")
    await meta.open()
    try:
        assert await ensure_first_admin(meta=meta, settings=settings) == (ADMIN_USERNAME, None)
        users = await meta.list_users()
        assert [(u.username, u.role, u.disabled) for u in users] == [(ADMIN_USERNAME, "admin", False)]
        assert verify_password(users[0].password_hash, ADMIN_PASSWORD)
        assert await ensure_first_admin(meta=meta, settings=settings) == (ADMIN_USERNAME, None)
        assert await meta.count_users() == 1
    finally:
        await meta.close()


async def test_first_admin_random_password(tmp_path: Path, redis_url: str) -> None:
    """Without credentials: user "admin" with a random password returned once."""
    settings = bare_settings(tmp_path, redis_url)
    meta = SqliteMetaStore(tmp_path / "meta.sqlite3")
    await meta.open()
    try:
        username, password = await ensure_first_admin(meta=meta, settings=settings)
        assert username == "admin" and password is not None and len(password) >= 24
        user = await meta.get_user_by_username("admin")
        assert user is not None and user.role == "admin" and verify_password(user.password_hash, password)
        assert await ensure_first_admin(meta=meta, settings=settings) == ("admin", None)
        # A second random run never makes a different password.
        other = bare_settings(tmp_path, redis_url)
        assert await ensure_first_admin(meta=meta, settings=other) == ("admin", None)
    finally:
        await meta.close()


async def test_first_admin_race_between_processes(tmp_path: Path, redis_url: str) -> None:
    """Two stores on one file bootstrapping together: one admin, one password reported."""
    settings = bare_settings(tmp_path, redis_url)
    stores = [SqliteMetaStore(tmp_path / "meta.sqlite3") for _ in range(4)]
    for store in stores:
        await store.open()
    try:
        results = await asyncio.gather(*(ensure_first_admin(meta=s, settings=settings) for s in stores))
        assert {r[0] for r in results} == {"admin"}
        passwords = [r[1] for r in results if r[1] is not None]
        assert len(passwords) == 1
        assert await stores[0].count_users() == 1
        user = await stores[0].get_user_by_username("admin")
        assert user is not None and verify_password(user.password_hash, passwords[0])
    finally:
        for store in stores:
            await store.close()


async def test_gateway_logs_generated_password_once(
    tmp_path: Path, redis_url: str, redis: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The gateway lifespan bootstraps the admin and logs the random password once at WARNING."""
    del redis
    settings = bare_settings(tmp_path, redis_url, ingest_url="http://127.0.0.1:9", query_url="http://127.0.0.1:9")
    caplog.set_level(logging.WARNING)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        pass
    matches = [r for r in caplog.records if "generated password" in r.getMessage()]
    assert len(matches) == 1 and matches[0].levelno == logging.WARNING
    found = re.search(r"generated password (\S+)", matches[0].getMessage())
    assert found is not None
    password = found.group(1)
    caplog.clear()
    app = create_app(settings)  # a restart: users exist, nothing is logged
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
            response = await client.post("/api/auth/login", json={"username": "admin", "password": password})
            assert response.status_code == 200
    assert not [r for r in caplog.records if "generated password" in r.getMessage()]
