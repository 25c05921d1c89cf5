"""Fixtures for the live-tail tests: one real platform, logged-in cookies, API keys, Socket.IO clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import socketio
from redis.asyncio import Redis

from tests.e2e.platform import Platform, run_platform

NAMESPACE = "/live"
LIVE_OVERRIDES = {
    # Small per-client queue so a stalled client overflows quickly; small ring buffer to bound memory.
    "LOGWARDEN_LIVE_CLIENT_QUEUE": "100",
    "LOGWARDEN_LIVE_BUFFER_SIZE": "2000",
    "LOGWARDEN_LOGIN_ATTEMPTS_PER_MINUTE": "1000",
}


@pytest.fixture(scope="session")
def live_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """`logwarden up` with live-tail settings sized for the tests."""
    with run_platform(tmp_path_factory.mktemp("live-platform"), **LIVE_OVERRIDES) as running:
        yield running


def platform_redis_url(platform: Platform) -> str:
    """The platform's embedded Redis (a unix socket in its data dir)."""
    return f"unix://{platform.data_dir.resolve()}/redis/redis.sock"


@pytest.fixture
async def stream(live_platform: Platform) -> AsyncIterator[Redis]:
    """A Redis client on the platform's bus, to publish events like ingest does."""
    client = Redis.from_url(platform_redis_url(live_platform))
    try:
        yield client
    finally:
        await client.aclose()


def login(platform: Platform) -> tuple[str, str]:
    """Log in as the admin; returns (Cookie header value, CSRF token)."""
    response = httpx.post(
        f"{platform.url}/api/auth/login",
        json={"username": platform.admin_username, "password": platform.admin_password},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    cookie = "; ".join(f"{name}={value}" for name, value in response.cookies.items())
    return cookie, response.json()["csrf_token"]


@pytest.fixture(scope="session")
def admin_session(live_platform: Platform) -> tuple[str, str]:
    """(Cookie header, CSRF token) of one admin session for the whole session."""
    return login(live_platform)


@pytest.fixture
def cookie_headers(live_platform: Platform, admin_session: tuple[str, str]) -> dict[str, str]:
    """Headers a same-origin browser would send with its session cookie."""
    return {"Cookie": admin_session[0], "Origin": live_platform.url}


def create_key(platform: Platform, session: tuple[str, str], *, scopes: list[str], tenant_id: str | None = None) -> str:
    """Create an API key as the admin; returns the full key."""
    body: dict[str, Any] = {"name": f"live-test-{time.monotonic_ns()}", "scopes": scopes}
    if tenant_id is not None:
        body["tenant_id"] = tenant_id
    response = httpx.post(
        f"{platform.url}/api/keys",
        json=body,
        headers={"Cookie": session[0], "X-CSRF-Token": session[1], "Origin": platform.url},
        timeout=10,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


class LiveTestClient:
    """A python-socketio AsyncClient on ``/live`` that records everything it receives."""

    def __init__(self, url: str, headers: dict[str, str], *, transports: list[str] | None = None) -> None:
        self.url = url
        self.headers = headers
        self.transports = transports or ["websocket"]
        self.sio = socketio.AsyncClient(reconnection=False)
        self._http: aiohttp.ClientSession | None = None
        self.logs: list[dict[str, Any]] = []
        self.received_at: dict[str, float] = {}
        self.dropped: list[int] = []
        self.subscribe_errors: list[dict[str, Any]] = []
        self.connect_errors: list[Any] = []
        self._changed = asyncio.Event()

    def _register(self) -> None:
        @self.sio.on("logs", namespace=NAMESPACE)
        async def on_logs(batch: list[dict[str, Any]]) -> None:
            now = time.time()
            for event in batch:
                self.received_at.setdefault(event["id"], now)
            self.logs.extend(batch)
            self._changed.set()

        @self.sio.on("dropped", namespace=NAMESPACE)
        async def on_dropped(data: dict[str, int]) -> None:
            self.dropped.append(data["count"])
            self._changed.set()

        @self.sio.on("subscribe_error", namespace=NAMESPACE)
        async def on_subscribe_error(data: dict[str, Any]) -> None:
            self.subscribe_errors.append(data)
            self._changed.set()

        @self.sio.on("connect_error", namespace=NAMESPACE)
        async def on_connect_error(data: Any) -> None:
            self.connect_errors.append(data)
            self._changed.set()

    async def connect(self) -> None:
        """Connect through the given URL (the gateway, or a service with internal headers).

        Like a browser, every request of the connection (each long poll too, not
        only the handshake) carries the headers and the cookie: the Engine.IO
        client sends extra headers only with the handshake, so they go on the
        aiohttp session instead.
        """
        headers = {k: v for k, v in self.headers.items() if k.lower() != "cookie"}
        cookies = {}
        for part in self.headers.get("Cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep:
                cookies[name] = value
        self._http = aiohttp.ClientSession(
            headers=headers,
            cookies=cookies,
            cookie_jar=aiohttp.CookieJar(unsafe=True),  # unsafe = IP hosts allowed
        )
        self.sio = socketio.AsyncClient(reconnection=False, http_session=self._http)
        self._register()
        await self.sio.connect(
            self.url, headers=dict(headers), namespaces=[NAMESPACE], transports=self.transports, wait_timeout=10
        )

    async def subscribe(self, **payload: Any) -> dict[str, Any]:
        """Emit ``subscribe`` and return the server's acknowledgement."""
        ack: dict[str, Any] = await self.sio.call("subscribe", payload, namespace=NAMESPACE, timeout=10)
        return ack

    async def wait_for(self, predicate: Callable[[], bool], *, timeout: float = 5.0, what: str = "") -> None:
        """Wait (on received messages, not sleeps) until ``predicate`` holds; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                got = self.messages()
                raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}; got {got}")
            self._changed.clear()
            if predicate():
                return
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    def messages(self, service: str | None = None) -> list[str]:
        """Messages received so far (optionally of one service), in arrival order."""
        return [e.get("message", "") for e in self.logs if service is None or e.get("service") == service]

    def has_message(self, message: str) -> bool:
        """Whether an event with this exact message arrived."""
        return any(e.get("message") == message for e in self.logs)

    async def close(self) -> None:
        """Disconnect (idempotent)."""
        if self.sio.connected:
            if self.sio.transport() == "polling":
                # Like a browser leaving: send the Engine.IO close, then abort the pending long poll
                # rather than wait for it (python-engineio's server only ends it at its ping timeout).
                await self.sio.eio.disconnect(abort=True)
            else:
                await self.sio.disconnect()
        if self._http is not None:
            await self._http.close()


@pytest.fixture
async def live_clients() -> AsyncIterator[Callable[..., LiveTestClient]]:
    """A factory of LiveTestClients, all disconnected after the test."""
    made: list[LiveTestClient] = []

    def make(url: str, headers: dict[str, str], **kwargs: Any) -> LiveTestClient:
        client = LiveTestClient(url, headers, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
