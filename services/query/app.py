"""The query service: indexer (stream -> store), search, stats, export, saved searches."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

from services.query.cache import QueryCache
from services.query.indexer import Indexer
from services.query.router import internal_router, router
from shared.health import CheckResult, check_redis
from shared.service import set_health_checks, setup_service
from shared.settings import Settings
from shared.store.factory import create_log_store, create_meta_store


def create_app(settings: Settings) -> FastAPI:
    """Build the query app; the store, metadata and indexer open in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        store = create_log_store(settings)
        meta = create_meta_store(settings)
        await store.open()
        await meta.open()
        indexer = Indexer(settings=settings, redis=redis, store=store, meta=meta)
        app.state.redis, app.state.store, app.state.meta = redis, store, meta
        app.state.cache = QueryCache(
            redis, ttl_seconds={"search": settings.search_cache_seconds, "stats": settings.stats_cache_seconds}
        )
        app.state.indexer = indexer

        async def redis_check() -> CheckResult:
            return await check_redis(redis)

        set_health_checks(
            app, {"redis": redis_check, "store": store.health, "metadata": meta.health, "indexer": indexer.health}
        )
        indexer.start()
        try:
            yield
        finally:
            # The indexer stops first: its last batch must finish writing before the store closes.
            await indexer.stop()
            await store.close()
            await meta.close()
            await redis.aclose()

    app = FastAPI(title="logwarden query", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    setup_service(app, service="query", settings=settings)
    app.include_router(router)
    app.include_router(internal_router)
    return app
