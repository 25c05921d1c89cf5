"""User administration (last-admin rule) and API keys (shown once, revocation, header forms)."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI

from services.gateway.auth.security import parse_api_key
from tests.gateway.conftest import ADMIN_USERNAME, Login


async def _my_id(client: httpx.AsyncClient) -> str:
    return str((await client.get("/api/auth/me")).json()["id"])


async def test_last_admin_cannot_be_removed(
    admin: httpx.AsyncClient, login: Login, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Demoting, disabling or deleting the only active admin is a 409; with two it is allowed."""
    root_id = await _my_id(admin)
    for change in ({"role": "analyst"}, {"disabled": True}):
        response = await admin.patch(f"/api/users/{root_id}", json=change)
        assert response.status_code == 409, change
    assert (await admin.delete(f"/api/users/{root_id}")).status_code == 409
    listed = (await admin.get("/api/users")).json()
    assert [u["role"] for u in listed["data"] if u["id"] == root_id] == ["admin"]

    # A disabled admin does not count as active.
    other = await make_user("second-admin", "admin")
    await admin.patch(f"/api/users/{other['id']}", json={"disabled": True})
    assert (await admin.patch(f"/api/users/{root_id}", json={"role": "viewer"})).status_code == 409
    await admin.patch(f"/api/users/{other['id']}", json={"disabled": False})

    second = await login("second-admin", other["password"])
    demoted = await second.patch(f"/api/users/{root_id}", json={"role": "viewer"})
    assert demoted.status_code == 200 and demoted.json()["role"] == "viewer"
    assert (await second.delete(f"/api/users/{other['id']}")).status_code == 409  # now the last one


async def test_user_crud_and_validation(
    admin: httpx.AsyncClient, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Create/list/update/delete; duplicates 409; weak passwords and unknown fields 422; no hashes."""
    user = await make_user("lena", "analyst")
    duplicate = await admin.post("/api/users", json={"username": "LENA", "password": "long-enough-pass"})
    assert duplicate.status_code == 409
    weak = await admin.post("/api/users", json={"username": "max", "password": "short"})
    assert weak.status_code == 422
    bad_role = await admin.post("/api/users", json={"username": "max", "password": "long-enough-pass", "role": "god"})
    assert bad_role.status_code == 422
    extra = await admin.post(
        "/api/users", json={"username": "max", "password": "long-enough-pass", "password_hash": "x"}
    )
    assert extra.status_code == 422
    listing = await admin.get("/api/users")
    assert listing.status_code == 200
    assert {u["username"] for u in listing.json()["data"]} == {ADMIN_USERNAME, "lena"}
    assert "password" not in listing.text and "argon2" not in listing.text
    updated = await admin.patch(f"/api/users/{user['id']}", json={"email": "lena@example.com"})
    assert updated.status_code == 200 and updated.json()["email"] == "lena@example.com"
    assert (await admin.patch("/api/users/nope", json={"role": "viewer"})).status_code == 404


async def test_api_key_is_shown_once_and_stored_hashed(
    gateway: FastAPI, admin: httpx.AsyncClient, make_key: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """The full key appears only in the create response; the store holds a hash of the secret."""
    created = await make_key(["ingest", "read"], name="shipper")
    key = created["key"]
    parsed = parse_api_key(key)
    assert parsed is not None
    prefix, secret = parsed
    assert key.startswith("lw_") and created["prefix"] == prefix and len(secret) >= 43
    assert created["scopes"] == ["ingest", "read"]
    listing = await admin.get("/api/keys")
    assert listing.status_code == 200
    assert listing.json()["count"] == 1
    assert "key" not in listing.json()["data"][0] and "key_hash" not in listing.json()["data"][0]
    assert secret not in listing.text
    record = await gateway.state.meta.get_api_key_by_prefix(prefix)
    assert record is not None and secret not in record.key_hash and secret not in record.model_dump_json()


async def test_key_header_forms_and_basic_auth(
    clients: Callable[..., httpx.AsyncClient], make_key: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Bearer, X-API-Key and Basic (any username, key as password) all work; wrong keys are 401."""
    key = (await make_key(["read"], name="reader"))["key"]
    basic = base64.b64encode(f"anything:{key}".encode()).decode()
    empty_user = base64.b64encode(f":{key}".encode()).decode()
    for headers in (
        {"Authorization": f"Bearer {key}"},
        {"X-API-Key": key},
        {"Authorization": f"Basic {basic}"},
        {"Authorization": f"Basic {empty_user}"},
    ):
        me = await clients(headers=headers).get("/api/auth/me")
        assert me.status_code == 200, headers
        assert me.json()["kind"] == "key" and me.json()["name"] == "reader" and me.json()["scopes"] == ["read"]
    tampered = key[:-4] + ("aaaa" if not key.endswith("aaaa") else "bbbb")
    wrong_basic = base64.b64encode(f"{key}:wrong".encode()).decode()
    for headers in (
        {"Authorization": f"Bearer {tampered}"},
        {"X-API-Key": "lw_nosuchid_" + "a" * 43},
        {"X-API-Key": "garbage"},
        {"Authorization": f"Basic {wrong_basic}"},
        {"Authorization": "Basic !!!not-base64"},
        {"Authorization": f"Token {key}"},
    ):
        assert (await clients(headers=headers).get("/api/auth/me")).status_code == 401, headers


async def test_invalid_key_is_401_even_with_a_valid_session(login: Login) -> None:
    """Key credentials take precedence: a bad key never falls back to the cookie."""
    client = await login()
    assert (await client.get("/api/auth/me")).status_code == 200
    response = await client.get("/api/auth/me", headers={"X-API-Key": "lw_abcdefgh_" + "x" * 43})
    assert response.status_code == 401


async def test_revoked_key_stops_working_at_once(
    admin: httpx.AsyncClient,
    clients: Callable[..., httpx.AsyncClient],
    make_key: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    """DELETE /api/keys/{id}: the very next request with the key is 401."""
    created = await make_key(["ingest"])
    shipper = clients(headers={"Authorization": f"Bearer {created['key']}"})
    assert (await shipper.get("/api/auth/me")).status_code == 200
    assert (await shipper.post("/api/logs", json={"message": "hi"})).status_code == 502  # auth passed
    assert (await admin.delete(f"/api/keys/{created['id']}")).status_code == 204
    assert (await shipper.get("/api/auth/me")).status_code == 401
    assert (await shipper.post("/api/logs", json={"message": "hi"})).status_code == 401
    assert (await admin.delete(f"/api/keys/{created['id']}")).status_code == 404


async def test_last_used_is_recorded_and_throttled(
    gateway: FastAPI, clients: Callable[..., httpx.AsyncClient], make_key: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """First use sets last_used_at; uses within a minute do not rewrite it; later ones do."""
    created = await make_key(["read"])
    assert created["last_used_at"] is None
    client = clients(headers={"X-API-Key": created["key"]})
    await client.get("/api/auth/me")
    meta = gateway.state.meta
    first = (await meta.get_api_key_by_prefix(created["prefix"])).last_used_at
    assert first is not None
    await client.get("/api/auth/me")
    assert (await meta.get_api_key_by_prefix(created["prefix"])).last_used_at == first
    old = datetime.now(UTC) - timedelta(minutes=5)
    await meta.touch_api_key(created["id"], old)
    await client.get("/api/auth/me")
    assert (await meta.get_api_key_by_prefix(created["prefix"])).last_used_at > old + timedelta(minutes=4)


async def test_key_validation(admin: httpx.AsyncClient) -> None:
    """Scopes must be known and non-empty; a tenant key cannot be admin."""
    assert (await admin.post("/api/keys", json={"name": "x", "scopes": []})).status_code == 422
    assert (await admin.post("/api/keys", json={"name": "x", "scopes": ["root"]})).status_code == 422
    tenant_admin = await admin.post("/api/keys", json={"name": "x", "scopes": ["admin"], "tenant_id": "acme"})
    assert tenant_admin.status_code == 422
    ok = await admin.post("/api/keys", json={"name": "x", "scopes": ["read", "ingest", "read"], "tenant_id": "acme"})
    assert ok.status_code == 201 and ok.json()["scopes"] == ["ingest", "read"] and ok.json()["tenant_id"] == "acme"


async def test_openapi_lists_the_auth_routes(admin: httpx.AsyncClient) -> None:
    """The gateway's own routes and their schemas appear in /openapi.json."""
    document = (await admin.get("/openapi.json")).json()
    paths = document["paths"]
    for path, method in (
        ("/api/auth/login", "post"),
        ("/api/auth/logout", "post"),
        ("/api/auth/me", "get"),
        ("/api/users", "get"),
        ("/api/users", "post"),
        ("/api/users/{user_id}", "patch"),
        ("/api/users/{user_id}", "delete"),
        ("/api/keys", "post"),
        ("/api/keys", "get"),
        ("/api/keys/{key_id}", "delete"),
    ):
        assert method in paths.get(path, {}), f"{method.upper()} {path} missing from /openapi.json"
    schemas = document["components"]["schemas"]
    for name in ("LoginRequest", "LoginResponse", "UserPublic", "UserCreate", "UserUpdate", "ApiKeyCreated"):
        assert name in schemas
    assert "password_hash" not in str(schemas["UserPublic"])
