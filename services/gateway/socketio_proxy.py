"""Reverse proxy for the live tail: ``/socket.io/`` on the gateway -> the realtime service.

A pure ASGI app mounted at ``/socket.io``. It carries both Engine.IO
transports, so the live tail works behind any HTTP/1.1 reverse proxy (long
polling needs nothing special; WebSocket is used when upgrades get through):

- HTTP long-polling: the (small) request body is read, forwarded with the
  gateway's pooled httpx client, and the answer is streamed back; a poll the
  browser abandons is closed upstream at once.
- WebSocket: the client's socket is accepted only after the upstream one to
  ``ws://realtime/socket.io/?...`` is open, then frames are pumped both ways;
  either side closing closes the other. Flow control is end to end: while the
  browser does not read, the gateway stops reading the realtime service, whose
  per-client queue then drops the oldest events for that client only.

Every request (each poll, and the WebSocket handshake) is authenticated from
its cookies / API key headers, must hold ``read``, and must come from an
allowed Origin when it names one: foreign Origin -> 403, anonymous -> 401
(HTTP) or close 1008 (WebSocket). The caller's credentials never leave the
gateway; the principal travels upstream in the internal headers. A WebSocket
is re-authenticated every minute, so a revoked session or key loses its tail.

Engine.IO long-polling sessions live in one realtime process: with several
realtime replicas behind one public name, the load balancer in front of them
must be sticky (or clients must use WebSocket only).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Any, Final

import httpx
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection, Request
from starlette.types import Message, Receive, Scope, Send
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, WebSocketException

from services.gateway.auth.permissions import allowed
from services.gateway.auth.service import authenticate_headers, origin_allowed
from services.gateway.proxy import forward_headers, response_headers
from shared.errors import error_response
from shared.internal import Principal
from shared.metrics import AUTH_FAILURES, PROXY_UPSTREAM_ERRORS
from shared.settings import Settings

log = logging.getLogger(__name__)

SERVICE: Final = "realtime"
MAX_POLL_BODY: Final = 1 << 20  # Engine.IO client packets are tiny; realtime caps them lower still
MAX_WS_MESSAGE: Final = 64 << 20  # server -> client batches (a resume backfill can be large)
REAUTH_SECONDS: Final = 60.0
WS_OPEN_TIMEOUT: Final = 10.0
_WS_FORWARDED: Final = ("user-agent", "accept-language")
_UNSENDABLE_CLOSE_CODES: Final = frozenset({1005, 1006, 1015})


class _Refused(Exception):
    """The caller may not open the live tail (status for HTTP, close code for WebSocket)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SocketIOProxy:
    """Pure ASGI app forwarding ``/socket.io/`` (polling and WebSocket) to the realtime service."""

    def __init__(self, app: Any) -> None:
        # The gateway app: its state (settings, meta, redis, upstream client) is filled by the lifespan.
        self._app = app

    @property
    def _settings(self) -> Settings:
        settings: Settings = self._app.state.settings
        return settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch on the scope type."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)

    # --- admission ---------------------------------------------------------------

    async def _admit(self, headers: Headers) -> Principal:
        """The caller's principal; raises _Refused for foreign origins, anonymous or unauthorised callers."""
        if not origin_allowed(headers.get("origin"), self._settings):
            AUTH_FAILURES.labels("foreign_origin").inc()
            raise _Refused(403, "origin not allowed")
        principal = await authenticate_headers(headers.raw, app_state=self._app.state)
        if principal is None:
            AUTH_FAILURES.labels("live_anonymous").inc()
            raise _Refused(401, "authentication required")
        if not allowed(principal, "read"):
            raise _Refused(403, "not allowed for your role or key scopes")
        return principal

    def _upstream_path(self, scope: Scope) -> str:
        query = scope.get("query_string", b"").decode("latin-1")
        return scope["path"] + (f"?{query}" if query else "")

    # --- HTTP long-polling ----------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = await self._admit(request.headers)
        except _Refused as refused:
            extra = {"WWW-Authenticate": 'Bearer realm="logwarden"'} if refused.status == 401 else None
            await error_response(refused.status, refused.message, headers=extra)(scope, receive, send)
            return
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_POLL_BODY:
                await error_response(413, "payload too large")(scope, receive, send)
                return
        client: httpx.AsyncClient = self._app.state.upstream
        token = self._settings.internal_token.get_secret_value()
        upstream_request = client.build_request(
            request.method,
            self._settings.service_url(SERVICE) + self._upstream_path(scope),
            headers=forward_headers(request, principal, token),
            content=body if request.method not in {"GET", "HEAD"} else None,
        )
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.TimeoutException:
            PROXY_UPSTREAM_ERRORS.labels(SERVICE, "timeout").inc()
            await error_response(504, "the realtime service did not answer in time")(scope, receive, send)
            return
        except httpx.TransportError as exc:
            PROXY_UPSTREAM_ERRORS.labels(SERVICE, "unreachable").inc()
            log.warning("upstream realtime unreachable: %s", type(exc).__name__)
            await error_response(502, "the realtime service is unreachable")(scope, receive, send)
            return
        try:
            await _until_disconnect(self._relay(upstream, send), receive)
        finally:
            await upstream.aclose()

    async def _relay(self, upstream: httpx.Response, send: Send) -> None:
        headers = [
            (k.lower().encode("latin-1"), v.encode("latin-1"))
            for k, v in response_headers(upstream.headers.multi_items()).items()
        ]
        await send({"type": "http.response.start", "status": upstream.status_code, "headers": headers})
        async for chunk in upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    # --- WebSocket ------------------------------------------------------------------

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        connection = HTTPConnection(scope)
        try:
            principal = await self._admit(connection.headers)
        except _Refused:
            # Closing before accept makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        try:
            upstream = await self._open_upstream(scope, connection, principal)
        except (OSError, TimeoutError, WebSocketException) as exc:
            PROXY_UPSTREAM_ERRORS.labels(SERVICE, "unreachable").inc()
            log.warning("upstream realtime websocket failed: %s", type(exc).__name__)
            await send({"type": "websocket.close", "code": 1011})
            return
        await send({"type": "websocket.accept"})
        close_code = 1000
        client_gone = False
        async with upstream:
            pumps = {
                asyncio.create_task(self._client_to_upstream(receive, upstream)),
                asyncio.create_task(self._upstream_to_client(upstream, send)),
                asyncio.create_task(self._revalidate(connection.headers)),
            }
            try:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in pumps:
                    task.cancel()
                for task in pumps:
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
            for task in done:
                if task.cancelled() or task.exception() is not None:
                    close_code = 1011
                    continue
                outcome = task.result()
                if outcome == "client_gone":
                    client_gone = True
                elif isinstance(outcome, int):
                    close_code = outcome
        if not client_gone:
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": close_code})

    async def _open_upstream(self, scope: Scope, connection: HTTPConnection, principal: Principal) -> ClientConnection:
        base = self._settings.service_url(SERVICE)
        url = "ws" + base.removeprefix("http") + self._upstream_path(scope)
        headers = principal.headers(self._settings.internal_token.get_secret_value())
        for name in _WS_FORWARDED:
            value = connection.headers.get(name)
            if value:
                headers[name] = value
        client_ip = connection.client.host if connection.client else ""
        previous = connection.headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{previous}, {client_ip}" if previous else client_ip
        headers["x-forwarded-proto"] = "https" if scope.get("scheme") == "wss" else "http"
        origin = connection.headers.get("origin")
        return await connect(
            url,
            additional_headers=headers,
            origin=origin,  # type: ignore[arg-type]  # realtime's Engine.IO checks it against the same origins
            compression=None,  # a loopback/cluster hop: deflate would only cost CPU
            max_size=MAX_WS_MESSAGE,
            max_queue=4,  # stop reading upstream soon when the browser does not read
            ping_interval=None,  # Engine.IO heartbeats end to end; ours could fire while the browser stalls
            open_timeout=WS_OPEN_TIMEOUT,
            proxy=None,
        )

    async def _client_to_upstream(self, receive: Receive, upstream: ClientConnection) -> str | int:
        while True:
            message: Message = await receive()
            if message["type"] == "websocket.disconnect":
                return "client_gone"
            if message["type"] != "websocket.receive":
                continue
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            try:
                await upstream.send(data)
            except ConnectionClosed as exc:
                return _close_code(exc)

    async def _upstream_to_client(self, upstream: ClientConnection, send: Send) -> int:
        try:
            async for data in upstream:
                if isinstance(data, str):
                    await send({"type": "websocket.send", "text": data})
                else:
                    await send({"type": "websocket.send", "bytes": data})
        except ConnectionClosed as exc:
            return _close_code(exc)
        return _close_code(None, upstream.close_code)

    async def _revalidate(self, headers: Headers) -> int:
        while True:
            await asyncio.sleep(REAUTH_SECONDS)
            try:
                await self._admit(headers)
            except _Refused:
                return 1008


def _close_code(exc: ConnectionClosed | None, code: int | None = None) -> int:
    """A close code we may send to the browser for how the upstream connection ended."""
    if exc is not None:
        code = exc.rcvd.code if exc.rcvd is not None else None
    if code is None or code in _UNSENDABLE_CLOSE_CODES:
        return 1011 if exc is not None and exc.rcvd is None else 1000
    return code


async def _until_disconnect(work: Awaitable[None], receive: Receive) -> None:
    """Run ``work`` but give up as soon as the client disconnects (an abandoned long poll)."""

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    tasks: list[asyncio.Task[Any]] = [asyncio.ensure_future(work), asyncio.create_task(disconnected())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if tasks[0] in done:
        tasks[0].result()
