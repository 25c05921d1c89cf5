"""Sessions: cookies, storage by hash, idle and absolute expiry, logout, lock-outs."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from services.gateway.app import create_app
from services.gateway.auth.security import hash_password
from tests.gateway.conftest import ADMIN_PASSWORD, ADMIN_USERNAME, Login, client_for, make_settings
from tests.helpers import async_wait_until


def session_key(session_id: str) -> str:
    """The Redis key the gateway must use for a session id."""
    return "logwarden:session:" + hashlib.sha256(session_id.encode()).hexdigest()


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """name -> full Set-Cookie header."""
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


async def test_login_sets_hardened_cookies_and_stores_only_the_hash(
    clients: Callable[..., httpx.AsyncClient], redis: Redis
) -> None:
    """HttpOnly session cookie, readable CSRF cookie, SameSite=Lax, Path=/; Redis has no raw id."""
    client = clients()
    response = await client.post("/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["user"]["username"] == ADMIN_USERNAME and body["user"]["role"] == "admin"
    assert "password_hash" not in body["user"]
    cookies = set_cookies(response)
    session_cookie = cookies["logwarden_session"].lower()
    csrf_cookie = cookies["logwarden_csrf"].lower()
    assert "httponly" in session_cookie and "samesite=lax" in session_cookie and "path=/" in session_cookie
    assert "httponly" not in csrf_cookie and "samesite=lax" in csrf_cookie
    assert "secure" not in session_cookie  # public_url is http here
    session_id = client.cookies["logwarden_session"]
    assert client.cookies["logwarden_csrf"] == body["csrf_token"]
    assert await redis.exists(session_key(session_id)) == 1
    dump = b""
    async for key in redis.scan_iter("logwarden:*"):
        dump += key
        if await redis.type(key) == b"hash":
            dump += b"".join(v for pair in (await redis.hgetall(key)).items() for v in pair)
    assert session_id.encode() not in dump
    me = await client.get("/api/auth/me")
    assert me.status_code == 200 and me.json()["kind"] == "user" and me.json()["user"]["username"] == ADMIN_USERNAME


async def test_cookies_are_secure_over_https(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    """With an https public_url the cookies carry Secure."""
    del redis
    settings = make_settings(tmp_path, redis_url, public_url="https://logs.example.com")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with client_for(app) as client:
            response = await client.post(
                "/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD}
            )
    assert response.status_code == 200
    cookies = set_cookies(response)
    assert "secure" in cookies["logwarden_session"].lower()
    assert "secure" in cookies["logwarden_csrf"].lower()


async def test_idle_expiry_refreshes_on_use_and_expires_when_idle(
    gateway: FastAPI, admin: httpx.AsyncClient, redis: Redis
) -> None:
    """Each use pushes the TTL back to session_idle_minutes; an idle session disappears."""
    key = session_key(admin.cookies["logwarden_session"])
    idle = gateway.state.settings.session_idle_minutes * 60
    await redis.expire(key, 5)
    assert (await admin.get("/api/auth/me")).status_code == 200
    assert idle - 5 <= await redis.ttl(key) <= idle
    await redis.pexpire(key, 50)

    # Poll Redis, not the gateway: a request would count as use and refresh the TTL.
    async def gone() -> bool:
        return await redis.exists(key) == 0

    await async_wait_until(gone, timeout=5, what="the idle session to expire")
    assert (await admin.get("/api/auth/me")).status_code == 401


async def test_absolute_expiry_even_when_active(gateway: FastAPI, admin: httpx.AsyncClient, redis: Redis) -> None:
    """A session older than session_max_hours is refused and deleted though it was used recently."""
    key = session_key(admin.cookies["logwarden_session"])
    assert (await admin.get("/api/auth/me")).status_code == 200
    max_age = gateway.state.settings.session_max_hours * 3600
    await redis.hset(key, "created_at", repr(time.time() - max_age - 1))
    response = await admin.get("/api/auth/me")
    assert response.status_code == 401
    assert await redis.exists(key) == 0


async def test_session_ttl_never_exceeds_absolute_lifetime(
    gateway: FastAPI, admin: httpx.AsyncClient, redis: Redis
) -> None:
    """Near the end of its lifetime a session's TTL is capped by what remains."""
    key = session_key(admin.cookies["logwarden_session"])
    max_age = gateway.state.settings.session_max_hours * 3600
    await redis.hset(key, "created_at", repr(time.time() - max_age + 30))
    assert (await admin.get("/api/auth/me")).status_code == 200
    assert 0 < await redis.ttl(key) <= 30


async def test_logout_revokes_the_session(
    admin: httpx.AsyncClient, clients: Callable[..., httpx.AsyncClient], redis: Redis
) -> None:
    """After logout the old cookie is worthless and the cookies are cleared."""
    session_id = admin.cookies["logwarden_session"]
    response = await admin.post("/api/auth/logout")
    assert response.status_code == 204
    assert "logwarden_session" in set_cookies(response)
    assert await redis.exists(session_key(session_id)) == 0
    replay = clients(cookies={"logwarden_session": session_id})
    assert (await replay.get("/api/auth/me")).status_code == 401


async def test_relogin_issues_a_new_session_and_drops_the_old(
    login: Login, clients: Callable[..., httpx.AsyncClient]
) -> None:
    """Logging in again with a session cookie replaces it (no fixation)."""
    client = await login()
    first = client.cookies["logwarden_session"]
    again = await client.post("/api/auth/login", json={"username": ADMIN_USERNAME, "password": ADMIN_PASSWORD})
    assert again.status_code == 200
    second = client.cookies["logwarden_session"]
    assert second != first
    assert (await clients(cookies={"logwarden_session": first}).get("/api/auth/me")).status_code == 401


async def test_disabled_user_is_locked_out_at_once(
    admin: httpx.AsyncClient,
    login: Login,
    clients: Callable[..., httpx.AsyncClient],
    make_user: Callable[..., Awaitable[dict[str, Any]]],
    redis: Redis,
) -> None:
    """Disabling ends every session of the user and refuses new logins with the generic message."""
    user = await make_user("dora", "analyst")
    first = await login("dora", user["password"])
    second = await login("dora", user["password"])
    assert (await first.get("/api/auth/me")).status_code == 200
    response = await admin.patch(f"/api/users/{user['id']}", json={"disabled": True})
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert (await first.get("/api/auth/me")).status_code == 401
    assert (await second.get("/api/search")).status_code == 401
    assert await redis.exists(session_key(second.cookies["logwarden_session"])) == 0
    retry = await clients().post("/api/auth/login", json={"username": "dora", "password": user["password"]})
    assert retry.status_code == 401
    assert retry.json()["error"]["message"] == "invalid username or password"


async def test_disabled_in_the_store_directly_is_refused_without_revocation(
    gateway: FastAPI, login: Login, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Even when nobody revoked the sessions (e.g. the CLI), every request re-checks the user."""
    user = await make_user("eve", "viewer")
    client = await login("eve", user["password"])
    await gateway.state.meta.update_user(user["id"], disabled=True)
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_deleted_user_session_is_refused(
    admin: httpx.AsyncClient, login: Login, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Deleting a user ends their sessions."""
    user = await make_user("fred", "viewer")
    client = await login("fred", user["password"])
    assert (await admin.delete(f"/api/users/{user['id']}")).status_code == 204
    assert (await client.get("/api/auth/me")).status_code == 401
    assert (await admin.delete(f"/api/users/{user['id']}")).status_code == 404


async def test_password_change_revokes_sessions(
    admin: httpx.AsyncClient,
    login: Login,
    clients: Callable[..., httpx.AsyncClient],
    make_user: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    """A new password ends old sessions; only the new password logs in."""
    user = await make_user("gina", "viewer")
    client = await login("gina", user["password"])
    response = await admin.patch(f"/api/users/{user['id']}", json={"password": "a-brand-new-passphrase"})
    assert response.status_code == 200
    assert (await client.get("/api/auth/me")).status_code == 401
    old = await clients().post("/api/auth/login", json={"username": "gina", "password": user["password"]})
    assert old.status_code == 401
    await login("gina", "a-brand-new-passphrase")


async def test_password_changed_behind_the_gateways_back_ends_sessions(
    gateway: FastAPI, login: Login, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Sessions are bound to the password hash: a change in the store (CLI passwd) ends them."""
    user = await make_user("hank", "analyst")
    client = await login("hank", user["password"])
    await gateway.state.meta.update_user(user["id"], password_hash=hash_password("another-long-password"))
    assert (await client.get("/api/auth/me")).status_code == 401


async def test_role_change_revokes_sessions(
    admin: httpx.AsyncClient, login: Login, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """A demoted user must log in again (and then has the new role)."""
    user = await make_user("ivan", "analyst")
    client = await login("ivan", user["password"])
    assert (await admin.patch(f"/api/users/{user['id']}", json={"role": "viewer"})).status_code == 200
    assert (await client.get("/api/auth/me")).status_code == 401
    again = await login("ivan", user["password"])
    me = await again.get("/api/auth/me")
    assert me.json()["role"] == "viewer"
    assert (await again.get("/api/saved-searches")).status_code == 403
