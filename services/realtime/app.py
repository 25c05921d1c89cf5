"""The realtime service: Socket.IO live tail fed from the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from shared.health import CheckResult, check_redis
from shared.service import set_health_checks, setup_service
from shared.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """Build the realtime app; the stream reader starts in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        app.state.redis = redis

        async def redis_check() -> CheckResult:
            return await check_redis(redis)

        set_health_checks(app, {"redis": redis_check})
        try:
            yield
        finally:
            await redis.aclose()

    app = FastAPI(title="logwarden realtime", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    setup_service(app, service="realtime", settings=settings)
    return app
