"""The trust boundary: what the gateway forwards to a real upstream (uvicorn process)."""

from __future__ import annotations

import base64
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.settings import Settings
from tests.gateway.conftest import Login, make_settings
from tests.helpers import free_port, repo_root, wait_until

SPOOFED = {
    "X-Logwarden-Internal-Token": "spoofed-token",
    "X-Logwarden-Tenant": "someone-else",
    "X-Logwarden-User-Id": "01SPOOFEDADMIN",
    "X-Logwarden-Username": "root",
    "X-Logwarden-Role": "admin",
    "X-Logwarden-Scopes": "admin",
    "X-Logwarden-Principal": "system",
    "X-Logwarden-Something-New": "spoofed",
}


@pytest.fixture(scope="module")
def echo_url() -> Iterator[str]:
    """A real uvicorn process serving tests/gateway/echo_upstream.py."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.gateway.echo_upstream:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=repo_root(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/ping", timeout=1).status_code == 200, timeout=20, what="echo upstream")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def gateway_settings(tmp_path: Path, redis_url: str, echo_url: str) -> Settings:
    """Gateway settings whose ingest and query services are the echo upstream."""
    return make_settings(tmp_path, redis_url, ingest_url=echo_url, query_url=echo_url)


def _echoed(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    headers: dict[str, str] = response.json()["headers"]
    return headers


async def test_user_request_carries_the_real_principal_and_no_tenant(
    gateway_settings: Settings, login: Login, make_user: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """Spoofed X-Logwarden-* headers from a client are replaced by the authenticated user's."""
    user = await make_user("vera", "viewer")
    client = await login("vera", user["password"])
    headers = _echoed(await client.get("/api/search?q=error", headers=SPOOFED))
    token = gateway_settings.internal_token.get_secret_value()
    assert headers["x-logwarden-internal-token"] == token
    assert headers["x-logwarden-principal"] == "user"
    assert headers["x-logwarden-user-id"] == user["id"]
    assert headers["x-logwarden-username"] == "vera"
    assert headers["x-logwarden-role"] == "viewer"
    assert headers["x-logwarden-scopes"] == ""
    assert "x-logwarden-tenant" not in headers
    assert "x-logwarden-something-new" not in headers
    # The caller's credentials stay at the gateway.
    for name in ("cookie", "authorization", "x-api-key", "x-csrf-token"):
        assert name not in headers


async def test_tenant_key_forwards_its_tenant_whatever_the_client_claims(
    gateway_settings: Settings,
    clients: Callable[..., httpx.AsyncClient],
    make_key: Callable[..., Awaitable[dict[str, Any]]],
) -> None:
    """A tenant key's tenant is forwarded to ingest and query; spoofing it changes nothing."""
    created = await make_key(["ingest", "read"], tenant_id="acme", name="acme-shipper")
    basic = base64.b64encode(f"filebeat:{created['key']}".encode()).decode()
    for auth in ({"Authorization": f"Bearer {created['key']}"}, {"Authorization": f"Basic {basic}"}):
        client = clients(headers={**SPOOFED, **auth})
        for response in (
            await client.get("/api/stats"),
            await client.get("/api/logs/01HXYZ"),
            await client.get("/api/export?format=ndjson"),
            await client.post("/api/logs", json={"message": "hello", "tenant_id": "acme"}),
            await client.post(
                "/es/_bulk",
                content=b'{"index":{}}\n{"message":"x"}\n',
                headers={"Content-Type": "application/x-ndjson"},
            ),
        ):
            headers = _echoed(response)
            assert headers["x-logwarden-tenant"] == "acme"
            assert headers["x-logwarden-principal"] == "key"
            assert headers["x-logwarden-user-id"] == created["id"]
            assert headers["x-logwarden-scopes"] == "ingest,read"
            assert headers["x-logwarden-internal-token"] == gateway_settings.internal_token.get_secret_value()
            assert "x-logwarden-role" not in headers
            assert "authorization" not in headers


async def test_untenanted_key_forwards_no_tenant(
    clients: Callable[..., httpx.AsyncClient], make_key: Callable[..., Awaitable[dict[str, Any]]]
) -> None:
    """A key without tenant_id sends no tenant header even if the client invents one."""
    created = await make_key(["read"])
    client = clients(headers={"X-API-Key": created["key"], "X-Logwarden-Tenant": "acme"})
    headers = _echoed(await client.get("/api/search"))
    assert "x-logwarden-tenant" not in headers
    assert headers["x-logwarden-scopes"] == "read"
