"""The ingest service: inputs, parsing, normalisation, publishing to the stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from shared.health import CheckResult, check_redis
from shared.service import set_health_checks, setup_service
from shared.settings import Settings
from shared.store.factory import create_meta_store


def create_app(settings: Settings) -> FastAPI:
    """Build the ingest app; clients and listeners are opened in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        meta = create_meta_store(settings)
        await meta.open()
        app.state.redis, app.state.meta = redis, meta

        async def redis_check() -> CheckResult:
            return await check_redis(redis)

        set_health_checks(app, {"redis": redis_check, "metadata": meta.health})
        try:
            yield
        finally:
            await meta.close()
            await redis.aclose()

    app = FastAPI(title="logwarden ingest", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    setup_service(app, service="ingest", settings=settings)
    return app
