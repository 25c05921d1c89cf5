"""The gateway: public entry point (pages, auth, reverse proxy, merged OpenAPI)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.staticfiles import StaticFiles
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from redis.asyncio import Redis
from starlette.responses import HTMLResponse, JSONResponse, Response

from services.gateway.auth.dependencies import require_permission
from services.gateway.auth.router import router as auth_router
from services.gateway.auth.service import ensure_first_admin
from services.gateway.health import UPSTREAMS
from services.gateway.health import router as health_router
from services.gateway.openapi import OpenApiMerger
from services.gateway.proxy import create_upstream_client, proxy_request
from services.gateway.routes import PROXY_ROUTES, ProxyRoute
from services.gateway.socketio_proxy import SocketIOProxy
from services.gateway.ui.router import router as ui_router
from services.gateway.ui.security import SecurityHeadersMiddleware
from shared.health import CheckResult, check_redis
from shared.internal import Principal
from shared.service import set_health_checks, setup_service
from shared.settings import Settings
from shared.store.factory import create_meta_store

log = logging.getLogger(__name__)


STATIC_DIR = Path(__file__).parent / "static"
SWAGGER_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>logwarden API</title>
<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script></body></html>"""


def _proxy_endpoint(route: ProxyRoute) -> Callable[..., Awaitable[Response]]:
    async def endpoint(
        request: Request, principal: Principal = Depends(require_permission(route.permission))
    ) -> Response:
        state = request.app.state
        return await proxy_request(
            request,
            client=state.upstream,
            base_url=state.settings.service_url(route.service),
            service=route.service,
            principal=principal,
            token=state.settings.internal_token.get_secret_value(),
        )

    endpoint.__name__ = f"proxy_{route.service}_{route.methods[0].lower()}_{route.path}"
    return endpoint


def create_app(settings: Settings) -> FastAPI:
    """Build the gateway app; clients are opened in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        meta = create_meta_store(settings)
        await meta.open()
        admin, generated = await ensure_first_admin(meta=meta, settings=settings)
        if generated is not None:
            log.warning(
                "created the first admin %r with the generated password %s (shown once; change it)",
                admin,
                generated,
            )
        upstream = create_upstream_client()
        health_client = create_upstream_client()
        provider = app.state.tracer_provider
        HTTPXClientInstrumentor.instrument_client(upstream, tracer_provider=provider)
        app.state.redis, app.state.meta, app.state.upstream = redis, meta, upstream
        app.state.health_client = health_client
        app.state.openapi_merger = OpenApiMerger(
            app,
            health_client,
            {n: settings.service_url(n) for n in UPSTREAMS},
            settings.internal_token.get_secret_value(),
        )

        async def redis_check() -> CheckResult:
            return await check_redis(redis)

        set_health_checks(app, {"redis": redis_check, "metadata": meta.health})
        try:
            yield
        finally:
            await upstream.aclose()
            await health_client.aclose()
            await meta.close()
            await redis.aclose()

    app = FastAPI(
        title="logwarden",
        version="0.1.0",
        description="Log monitoring platform: ingest, search, KPIs and live tail. "
        "Authenticate with a session cookie (POST /api/auth/login) or an API key "
        "(Authorization: Bearer, X-API-Key or HTTP Basic password).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.settings = settings
    setup_service(app, service="gateway", settings=settings, internal_auth=False)
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(ui_router)
    # Live tail: Socket.IO polling and WebSocket, authenticated here, served by realtime.
    app.mount("/socket.io", SocketIOProxy(app), name="socketio")

    for route in PROXY_ROUTES:
        app.add_api_route(route.path, _proxy_endpoint(route), methods=list(route.methods), include_in_schema=False)

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request, _: Principal = Depends(require_permission("read"))) -> JSONResponse:
        document: dict[str, Any] = await request.app.state.openapi_merger.document()
        return JSONResponse(document)

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(_: Principal = Depends(require_permission("read"))) -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(SecurityHeadersMiddleware)  # outermost: every response, errors included

    return app
