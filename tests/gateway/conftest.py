"""Fixtures for the gateway tests: the real app (lifespan run), real Redis, real SQLite."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.gateway.app import create_app
from shared.settings import Settings
from tests.helpers import free_port

ADMIN_USERNAME = "root"
ADMIN_PASSWORD = "correct-horse-battery-staple"
BASE_URL = "http://127.0.0.1:8000"  # the default public_url, so it is also the allowed Origin

Login = Callable[..., Awaitable[httpx.AsyncClient]]


def make_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings for one test: temp SQLite, the private Redis, upstreams on a port nobody listens on."""
    dead = f"http://127.0.0.1:{free_port()}"
    values: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "redis_url": redis_url,
        "internal_token": secrets.token_hex(32),
        "ingest_url": dead,
        "query_url": dead,
        "realtime_url": dead,
        "admin_username": ADMIN_USERNAME,
        "admin_password": ADMIN_PASSWORD,
        "login_attempts_per_minute": 1000,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def gateway_settings(tmp_path: Path, redis_url: str) -> Settings:
    """Default settings of the gateway under test."""
    return make_settings(tmp_path, redis_url)


@pytest.fixture
async def gateway(gateway_settings: Settings, redis: Redis) -> AsyncIterator[FastAPI]:
    """The gateway app with its lifespan running (Redis flushed first by the ``redis`` fixture)."""
    del redis
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app):
        yield app


def client_for(app: FastAPI, **kwargs: Any) -> httpx.AsyncClient:
    """An httpx client talking to the app in-process."""
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, **kwargs)


@pytest.fixture
async def clients(gateway: FastAPI) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """A factory of clients on the gateway, all closed at the end of the test."""
    opened: list[httpx.AsyncClient] = []

    def make(**kwargs: Any) -> httpx.AsyncClient:
        client = client_for(gateway, **kwargs)
        opened.append(client)
        return client

    yield make
    for client in opened:
        await client.aclose()


@pytest.fixture
async def login(clients: Callable[..., httpx.AsyncClient]) -> Login:
    """Log in through POST /api/auth/login; the client then sends the CSRF token on every request."""

    async def do(username: str = ADMIN_USERNAME, password: str = ADMIN_PASSWORD) -> httpx.AsyncClient:
        client = clients()
        response = await client.post("/api/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.text
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
        return client

    return do


@pytest.fixture
async def admin(login: Login) -> httpx.AsyncClient:
    """A client logged in as the bootstrap admin."""
    return await login()


@pytest.fixture
async def make_user(admin: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create a user through the API; returns its public record plus ``password``."""

    async def do(username: str, role: str = "viewer", password: str | None = None) -> dict[str, Any]:
        password = password or secrets.token_urlsafe(16)
        response = await admin.post("/api/users", json={"username": username, "password": password, "role": role})
        assert response.status_code == 201, response.text
        return {**response.json(), "password": password}

    return do


@pytest.fixture
async def make_key(admin: httpx.AsyncClient) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Create an API key through the API; returns the ApiKeyCreated body (with ``key``)."""

    async def do(scopes: list[str], tenant_id: str | None = None, name: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name or f"key-{secrets.token_hex(3)}", "scopes": scopes}
        if tenant_id is not None:
            body["tenant_id"] = tenant_id
        response = await admin.post("/api/keys", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    return do
