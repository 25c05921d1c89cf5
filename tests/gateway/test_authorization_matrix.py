"""The authorisation matrix, generated from the gateway's own route table.

Every route the gateway serves (walked from ``app.routes``) x every kind of
caller -> 401 for anonymous, 403 when not allowed, "passes auth" otherwise:
502 for proxied routes (no upstream is running, so the proxy answered, which
proves auth let the request through) and the real handler status for the
gateway's own routes. A route without an expectation here fails the suite.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from services.gateway.app import create_app
from services.gateway.routes import PROXY_ROUTES, Permission
from shared.settings import Settings
from tests.gateway.conftest import Login

PRINCIPALS = (
    "anonymous",
    "viewer",
    "analyst",
    "admin",
    "ingest_key",
    "read_key",
    "tenant_key",
    "admin_key",
)
AUTHENTICATED = frozenset(PRINCIPALS) - {"anonymous"}

# Who holds each permission: written out by hand (not computed from the
# implementation), so a change in permissions.py that widens access fails here.
GRANTS: dict[str, frozenset[str]] = {
    "read": frozenset({"viewer", "analyst", "admin", "read_key", "tenant_key", "admin_key"}),
    "ingest": frozenset({"analyst", "admin", "ingest_key", "tenant_key", "admin_key"}),
    "upload": frozenset({"analyst", "admin", "ingest_key", "tenant_key", "admin_key"}),
    "personal": frozenset({"analyst", "admin"}),
    "admin": frozenset({"admin", "admin_key"}),
    "authenticated": AUTHENTICATED,
}

# Routes anyone may call. The UI engineer's login page and static assets belong here.
PUBLIC: frozenset[tuple[str, str]] = frozenset(
    {
        ("GET", "/api/health"),
        ("GET", "/health"),
        ("GET", "/health/live"),
        ("GET", "/metrics"),
        ("POST", "/api/auth/login"),
        ("GET", "/login"),
        ("MOUNT", "/static"),
    }
)

# Proxied non-GET routes that only need "read" (a caller's own history). Any other
# write reachable with "read" is an error in routes.py.
READ_WRITES = frozenset({("DELETE", "/api/search-history")})


@dataclass(frozen=True)
class Local:
    """Expectation for a gateway-local route: who may call it and the status when allowed."""

    requirement: str
    status: int


LOCAL: dict[tuple[str, str], Local] = {
    ("POST", "/api/auth/logout"): Local("authenticated", 204),
    ("GET", "/api/auth/me"): Local("authenticated", 200),
    ("GET", "/api/users"): Local("admin", 200),
    ("POST", "/api/users"): Local("admin", 201),
    ("PATCH", "/api/users/{user_id}"): Local("admin", 200),
    ("DELETE", "/api/users/{user_id}"): Local("admin", 204),
    ("GET", "/api/keys"): Local("admin", 200),
    ("POST", "/api/keys"): Local("admin", 201),
    ("DELETE", "/api/keys/{key_id}"): Local("admin", 204),
    ("GET", "/openapi.json"): Local("read", 200),
    ("GET", "/docs"): Local("read", 200),
}

# HTML pages: anonymous callers are redirected to the login page (303) instead of 401.
PAGES: dict[tuple[str, str], str] = {
    ("GET", "/"): "read",
    ("GET", "/search"): "read",
    ("GET", "/live"): "read",
    ("GET", "/upload"): "upload",
    ("GET", "/files"): "read",
    ("GET", "/admin"): "admin",
}

# Mounted ASGI apps that authenticate every request themselves: (permission, probe URL).
# The Socket.IO proxy answers 502 when it let the caller through to a realtime that is down.
SELF_AUTHENTICATING_MOUNTS: dict[tuple[str, str], tuple[str, str]] = {
    ("MOUNT", "/socket.io"): ("read", "/socket.io/?EIO=4&transport=polling"),
}

PROXIED: dict[tuple[str, str], Permission] = {
    (method, route.path): route.permission for route in PROXY_ROUTES for method in route.methods
}


def served_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path) of every route of the app; mounts as ("MOUNT", path)."""
    found: list[tuple[str, str]] = []
    for context in iter_route_contexts(app.routes):
        path = context.path or context.path_format or ""
        if isinstance(context.original_route, Mount):
            found.append(("MOUNT", path))
            continue
        methods = context.methods
        if not methods:
            found.append(("WEBSOCKET", path))
            continue
        found.extend((method, path) for method in sorted(methods))
    return found


def test_every_route_has_an_expectation(gateway_settings: Settings) -> None:
    """A route without an entry in PUBLIC, LOCAL or PROXY_ROUTES fails, naming the route."""
    app = create_app(gateway_settings)
    routes = served_routes(app)
    assert len(routes) > 40
    missing = [
        f"{method} {path}"
        for method, path in routes
        if not any((method, path) in table for table in (PUBLIC, LOCAL, PROXIED, PAGES, SELF_AUTHENTICATING_MOUNTS))
    ]
    assert not missing, f"routes without an authorisation expectation: {missing}"
    stale = [f"{m} {p}" for m, p in LOCAL if (m, p) not in routes]
    assert not stale, f"expectations for routes the gateway does not serve: {stale}"


def test_proxied_writes_need_more_than_read() -> None:
    """routes.py sanity: a state-changing proxied route needing only "read" must be deliberate."""
    weak = [
        f"{m} {p}"
        for (m, p), permission in PROXIED.items()
        if m not in {"GET", "HEAD"} and permission == "read" and (m, p) not in READ_WRITES
    ]
    assert not weak, f"writes reachable with read-only access: {weak}"


def _fill(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


async def test_authorization_matrix(
    gateway: FastAPI,
    clients: Callable[..., httpx.AsyncClient],
    login: Login,
    admin: httpx.AsyncClient,
    make_user: Callable[..., Awaitable[dict[str, Any]]],
    make_key: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    """Every served route x every principal gets the expected status class."""
    users = {role: await make_user(f"matrix-{role}", role) for role in ("viewer", "analyst")}
    keys = {
        "ingest_key": await make_key(["ingest"]),
        "read_key": await make_key(["read"]),
        "tenant_key": await make_key(["ingest", "read"], tenant_id="acme"),
        "admin_key": await make_key(["admin"]),
    }

    async def client_of(principal: str) -> httpx.AsyncClient:
        if principal == "anonymous":
            return clients()
        if principal == "admin":
            return await login()
        if principal in users:
            return await login(users[principal]["username"], users[principal]["password"])
        key = keys[principal]["key"]
        # Each key kind uses a different way of presenting it, so all three are covered.
        if principal == "read_key":
            return clients(headers={"X-API-Key": key})
        if principal == "tenant_key":
            basic = base64.b64encode(f"filebeat:{key}".encode()).decode()
            return clients(headers={"Authorization": f"Basic {basic}"})
        return clients(headers={"Authorization": f"Bearer {key}"})

    principal_clients = {p: await client_of(p) for p in PRINCIPALS}
    patch_target = await make_user("matrix-patch-target", "viewer")

    async def local_request(method: str, path: str, principal: str) -> tuple[httpx.AsyncClient, str, Any]:
        client = principal_clients[principal]
        if path == "/api/users/{user_id}":
            if method == "DELETE":
                victim = await make_user(f"victim-{secrets.token_hex(4)}")
                return client, f"/api/users/{victim['id']}", None
            return client, f"/api/users/{patch_target['id']}", {"email": f"{secrets.token_hex(4)}@example.com"}
        if path == "/api/keys/{key_id}":
            victim_key = await make_key(["read"])
            return client, f"/api/keys/{victim_key['id']}", None
        if (method, path) == ("POST", "/api/users"):
            body = {"username": f"new-{secrets.token_hex(4)}", "password": secrets.token_urlsafe(16)}
            return client, path, body
        if (method, path) == ("POST", "/api/keys"):
            return client, path, {"name": "matrix", "scopes": ["read"]}
        if (method, path) == ("POST", "/api/auth/logout"):
            # Logging out must not end the session the rest of the matrix uses.
            return await client_of(principal), path, None
        return client, path, None

    failures: list[str] = []
    checked = 0
    for method, path in served_routes(gateway):
        if (method, path) in PUBLIC:
            if method == "MOUNT":
                url, method = f"{path}/swagger-init.js", "GET"
            else:
                url = _fill(path)
            body = {} if method == "POST" else None
            response = await principal_clients["anonymous"].request(method, url, json=body)
            if response.status_code in (401, 403):
                failures.append(f"{method} {path} is public but answered {response.status_code} to anonymous")
            checked += 1
            continue
        local = LOCAL.get((method, path))
        page = PAGES.get((method, path))
        mount = SELF_AUTHENTICATING_MOUNTS.get((method, path))
        if local:
            requirement, allowed_status = local.requirement, local.status
        elif page:
            requirement, allowed_status = page, 200
        elif mount:
            requirement, allowed_status = mount[0], 502
        else:
            requirement, allowed_status = PROXIED[(method, path)], 502
        for principal in PRINCIPALS:
            if local:
                client, url, body = await local_request(method, path, principal)
            elif mount:
                client, url, body = principal_clients[principal], mount[1], None
            else:
                client, url, body = principal_clients[principal], _fill(path), None
            response = await client.request("GET" if mount else method, url, json=body)
            if principal == "anonymous" and page:
                expected = 303
                location = response.headers.get("location", "")
                if response.status_code == 303 and not location.startswith("/login?next="):
                    failures.append(f"{method} {path} as anonymous: redirected to {location!r}, not the login page")
            elif principal == "anonymous":
                expected = 401
            elif principal in GRANTS[requirement]:
                expected = allowed_status
            else:
                expected = 403
            checked += 1
            if response.status_code != expected:
                failures.append(
                    f"{method} {path} as {principal}: expected {expected}, got {response.status_code} "
                    f"{response.text[:120]}"
                )
            elif expected == 401 and "www-authenticate" not in response.headers:
                failures.append(f"{method} {path} as anonymous: 401 without WWW-Authenticate")
    assert checked > 300
    assert not failures, "authorisation matrix mismatches:\n" + "\n".join(failures)
    await admin.aclose()
