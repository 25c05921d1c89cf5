"""Login (rate limit, no enumeration, login CSRF) and CSRF on cookie-authenticated writes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.gateway.app import create_app
from tests.gateway.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, BASE_URL, Login, make_settings

EVIL = "https://evil.example"


async def test_csrf_token_required_for_cookie_writes(login: Login, clients: Callable[..., httpx.AsyncClient]) -> None:
    """POST/PATCH/DELETE with a session need X-CSRF-Token equal to the session's token."""
    client = await login()
    token = client.headers.pop("X-CSRF-Token")
    body = {"name": "csrf", "scopes": ["read"]}
    missing = await client.post("/api/keys", json=body)
    assert missing.status_code == 403 and missing.json()["error"]["code"] == "csrf_failed"
    wrong = await client.post("/api/keys", json=body, headers={"X-CSRF-Token": token[:-2] + "xx"})
    assert wrong.status_code == 403
    # The token of another session of the same user does not fit this one.
    other = await login()
    other_token = other.headers["X-CSRF-Token"]
    assert other_token != token
    assert (await client.post("/api/keys", json=body, headers={"X-CSRF-Token": other_token})).status_code == 403
    # Proxied writes are protected too (refused before reaching the upstream).
    assert (await client.post("/api/logs", json={"message": "x"})).status_code == 403
    assert (await client.delete("/api/search-history")).status_code == 403
    ok = await client.post("/api/keys", json=body, headers={"X-CSRF-Token": token})
    assert ok.status_code == 201
    # Reads need no token.
    assert (await client.get("/api/keys")).status_code == 200
    # Nothing was created by the refused attempts.
    keys = (await client.get("/api/keys")).json()
    assert keys["count"] == 1


async def test_foreign_origin_refused_for_cookie_requests(login: Login) -> None:
    """A cookie-authenticated request from a foreign Origin is refused even with the right token."""
    client = await login()
    body = {"name": "origin", "scopes": ["read"]}
    refused = await client.post("/api/keys", json=body, headers={"Origin": EVIL})
    assert refused.status_code == 403
    assert (await client.get("/api/keys", headers={"Origin": EVIL})).status_code == 403
    assert (await client.post("/api/keys", json=body, headers={"Origin": "null"})).status_code == 403
    accepted = await client.post("/api/keys", json=body, headers={"Origin": BASE_URL})
    assert accepted.status_code == 201


async def test_extra_allowed_origin_is_accepted(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    """Origins listed in LOGWARDEN_ALLOWED_ORIGINS are trusted like the public URL."""
    del redis
    settings = make_settings(tmp_path, redis_url, allowed_origins=["https://ops.example.com"])
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL) as client:
            login = await client.post(
                "/api/auth/login",
                json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD},
                headers={"Origin": "https://ops.example.com"},
            )
            assert login.status_code == 200
            headers = {"X-CSRF-Token": login.json()["csrf_token"], "Origin": "https://ops.example.com"}
            ok = await client.post("/api/keys", json={"name": "o", "scopes": ["read"]}, headers=headers)
            assert ok.status_code == 201
            headers["Origin"] = EVIL
            bad = await client.post("/api/keys", json={"name": "o", "scopes": ["read"]}, headers=headers)
            assert bad.status_code == 403


async def test_api_key_requests_are_exempt_from_csrf(
    clients: Callable[..., httpx.AsyncClient], make_key: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Keys are not ambient credentials: no token needed, Origin irrelevant."""
    key = (await make_key(["admin"]))["key"]
    client = clients(headers={"Authorization": f"Bearer {key}", "Origin": EVIL})
    response = await client.post("/api/keys", json={"name": "from-key", "scopes": ["ingest"]})
    assert response.status_code == 201


async def test_login_csrf_foreign_origin_refused(clients: Callable[..., httpx.AsyncClient]) -> None:
    """A login form posted from another site is refused; same-origin login works."""
    client = clients()
    creds = {"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
    refused = await client.post("/api/auth/login", json=creds, headers={"Origin": EVIL})
    assert refused.status_code == 403
    assert "logwarden_session" not in client.cookies
    accepted = await client.post("/api/auth/login", json=creds, headers={"Origin": BASE_URL})
    assert accepted.status_code == 200


async def test_no_user_enumeration(
    gateway: FastAPI,
    admin: httpx.AsyncClient,
    clients: Callable[..., httpx.AsyncClient],
    make_user: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    """Unknown user, wrong password and disabled user get the same status and body."""
    user = await make_user("jane", "viewer")
    disabled = await make_user("kurt", "viewer")
    await admin.patch(f"/api/users/{disabled['id']}", json={"disabled": True})
    client = clients()
    answers = [
        await client.post("/api/auth/login", json={"username": "nobody-here", "password": "whatever-pass"}),
        await client.post("/api/auth/login", json={"username": "jane", "password": "wrong-password!"}),
        await client.post("/api/auth/login", json={"username": "kurt", "password": disabled["password"]}),
    ]
    assert [a.status_code for a in answers] == [401, 401, 401]
    assert len({a.content for a in answers}) == 1
    assert answers[0].json()["error"]["message"] == "invalid username or password"
    assert "set-cookie" not in answers[1].headers
    ok = await client.post("/api/auth/login", json={"username": "JANE", "password": user["password"]})
    assert ok.status_code == 200  # usernames are case-insensitive
    stored = await gateway.state.meta.get_user(user["id"])
    assert stored.last_login is not None


@pytest.fixture
async def limited_app(tmp_path: Path, redis_url: str, redis: Redis) -> Any:
    """A gateway allowing 3 login attempts a minute."""
    del redis
    app = create_app(make_settings(tmp_path, redis_url, login_attempts_per_minute=3))
    async with app.router.lifespan_context(app):
        yield app


def _client(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 40000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)


async def test_login_rate_limited_per_username(limited_app: FastAPI, redis: Redis) -> None:
    """After the limit, even the right password gets 429 with Retry-After, from any address."""
    async with _client(limited_app, "10.0.0.1") as first, _client(limited_app, "10.0.0.2") as second:
        for _ in range(3):
            wrong = await first.post("/api/auth/login", json={"username": ADMIN_USERNAME, "password": "nope-nope"})
            assert wrong.status_code == 401
        limited = await first.post("/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert limited.json()["error"]["code"] == "too_many_requests"
        elsewhere = await second.post(
            "/api/auth/login", json={"username": ADMIN_USERNAME.upper(), "password": ADMIN_PASSWORD}
        )
        assert elsewhere.status_code == 429
        # The window is a Redis key with a TTL: once it lapses, logins work again.
        async for key in redis.scan_iter("logwarden:login-rate:*"):
            await redis.delete(key)
        again = await second.post("/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert again.status_code == 200


async def test_login_rate_limited_per_address(limited_app: FastAPI) -> None:
    """One address cycling through usernames is limited too; another address is not."""
    async with _client(limited_app, "10.0.0.3") as attacker, _client(limited_app, "10.0.0.4") as other:
        for name in ("u1", "u2", "u3"):
            assert (await attacker.post("/api/auth/login", json={"username": name, "password": "x"})).status_code == 401
        limited = await attacker.post("/api/auth/login", json={"username": "u4", "password": "x"})
        assert limited.status_code == 429 and "retry-after" in limited.headers
        fine = await other.post("/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
        assert fine.status_code == 200
