"""The realtime service: Socket.IO live tail fed from the stream.

``create_app`` returns a pure ASGI stack::

    InternalTokenMiddleware -> socketio.ASGIApp -> /socket.io/ : the live tail (services.realtime.live)
                                                -> anything else: the FastAPI app (/health, /metrics, ...)

socketio.ASGIApp hands the lifespan to the FastAPI app (it does so whenever it
has no on_startup/on_shutdown of its own), so the reader starts there. The
token middleware outside means a Socket.IO handshake that did not come through
the gateway is refused before Engine.IO sees it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import socketio
from fastapi import FastAPI
from redis.asyncio import Redis
from starlette.types import ASGIApp

from services.realtime.live import LiveTail
from shared.health import CheckResult, Status, check_redis
from shared.internal import InternalTokenMiddleware
from shared.service import set_health_checks, setup_service
from shared.settings import Settings

SOCKETIO_PATH = "socket.io"


def create_fastapi_app(settings: Settings, live: LiveTail) -> FastAPI:
    """The service's plain HTTP side (health, liveness, metrics); the lifespan runs the reader."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        app.state.redis = redis

        async def redis_check() -> CheckResult:
            return await check_redis(redis)

        async def reader_check() -> CheckResult:
            status: Status = "healthy" if live.reader_alive else "unhealthy"
            details = {
                "clients": len(live.clients),
                "dropping_clients": live.clients.dropping(),
                "buffered": len(live.buffer),
                "last_id": live.last_seen_id,
            }
            return CheckResult(status, details=details)

        await live.start(redis)
        set_health_checks(app, {"redis": redis_check, "reader": reader_check})
        try:
            yield
        finally:
            await live.stop()
            await redis.aclose()

    app = FastAPI(title="logwarden realtime", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.live = live
    setup_service(app, service="realtime", settings=settings)
    return app


def create_app(settings: Settings) -> ASGIApp:
    """Build the realtime ASGI app: Socket.IO at /socket.io/, everything else to FastAPI."""
    live = LiveTail(settings)
    api = create_fastapi_app(settings, live)
    wrapped = socketio.ASGIApp(live.sio, other_asgi_app=api, socketio_path=SOCKETIO_PATH)
    return InternalTokenMiddleware(wrapped, token=settings.internal_token.get_secret_value())
