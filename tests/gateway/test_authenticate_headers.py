"""``authenticate_headers``: authentication from raw ASGI headers (the Socket.IO proxy)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

from services.gateway.auth.service import authenticate_headers
from tests.gateway.conftest import BASE_URL


def raw(**headers: str) -> list[tuple[bytes, bytes]]:
    """Headers as they appear in an ASGI scope."""
    return [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]


async def test_session_cookie_and_origin(gateway: FastAPI, admin: httpx.AsyncClient) -> None:
    """A handshake with the session cookie authenticates; a foreign Origin is refused."""
    cookie = f"other=1; logwarden_session={admin.cookies['logwarden_session']}"
    principal = await authenticate_headers(raw(cookie=cookie, origin=BASE_URL), app_state=gateway.state)
    assert principal is not None and principal.kind == "user" and principal.role == "admin"
    assert await authenticate_headers(raw(cookie=cookie), app_state=gateway.state) is not None
    assert await authenticate_headers({"Cookie": cookie}, app_state=gateway.state) is not None
    assert (
        await authenticate_headers(raw(cookie=cookie, origin="https://evil.example"), app_state=gateway.state) is None
    )
    assert await authenticate_headers(raw(cookie="logwarden_session=forged"), app_state=gateway.state) is None
    assert await authenticate_headers([], app_state=gateway.state) is None
    await admin.post("/api/auth/logout")
    assert await authenticate_headers(raw(cookie=cookie), app_state=gateway.state) is None


async def test_api_keys(gateway: FastAPI, make_key: Callable[..., Awaitable[dict[str, Any]]]) -> None:
    """Keys work from raw headers, with their tenant; a bad key is None even next to a cookie."""
    created = await make_key(["read"], tenant_id="acme")
    principal = await authenticate_headers(raw(x_api_key=created["key"]), app_state=gateway.state)
    assert principal is not None and principal.tenant_id == "acme" and principal.scopes == frozenset({"read"})
    bearer = await authenticate_headers(raw(authorization=f"Bearer {created['key']}"), app_state=gateway.state)
    assert bearer is not None and bearer.id == created["id"]
    assert await authenticate_headers(raw(x_api_key="lw_zzzzzzzz_" + "a" * 43), app_state=gateway.state) is None
