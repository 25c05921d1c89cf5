"""The ingest service: inputs, parsing, normalisation, publishing to the stream."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from redis.asyncio import Redis
from starlette.responses import Response

from services.ingest.inputs import es_bulk, otlp
from services.ingest.inputs.syslog import SyslogUdp, start_syslog_udp, syslog_tcp_input
from services.ingest.inputs.tcp import StreamInput, json_lines_input
from services.ingest.inputs.upload import UploadManager
from services.ingest.publish import BacklogGate, Publisher
from services.ingest.router import router
from services.ingest.runtime import IngestRuntime
from services.ingest.service import parse_limits
from shared.errors import ApiError, error_response
from shared.health import CheckResult, check_redis
from shared.service import set_health_checks, setup_service
from shared.settings import Settings
from shared.store.factory import create_meta_store

log = logging.getLogger(__name__)


def create_app(settings: Settings) -> FastAPI:
    """Build the ingest app; clients, listeners and background work are opened in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = Redis.from_url(settings.effective_redis_url, health_check_interval=30)
        meta = create_meta_store(settings)
        await meta.open()
        publisher = Publisher(redis, batch_size=settings.publish_batch_size)
        gate = BacklogGate(redis, group=settings.consumer_group, limit=settings.backlog_limit)
        uploads = UploadManager(settings=settings, meta=meta, publisher=publisher, gate=gate)
        http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0))
        runtime = IngestRuntime(
            settings=settings, redis=redis, meta=meta, publisher=publisher, gate=gate, uploads=uploads, http=http
        )
        app.state.redis, app.state.meta, app.state.ingest = redis, meta, runtime
        streams: list[StreamInput] = []
        udp: SyslogUdp | None = None
        try:
            limits = parse_limits(settings)
            if settings.tcp_port:
                tcp = json_lines_input(publisher=publisher, gate=gate, limits=limits)
                runtime.listeners["tcp"] = await tcp.start(settings.bind_host, settings.tcp_port)
                streams.append(tcp)
            if settings.syslog_port:
                syslog_tcp = syslog_tcp_input(publisher=publisher, gate=gate, limits=limits)
                runtime.listeners["syslog_tcp"] = await syslog_tcp.start(settings.bind_host, settings.syslog_port)
                streams.append(syslog_tcp)
                udp, runtime.listeners["syslog_udp"] = await start_syslog_udp(
                    settings.bind_host, settings.syslog_port, publisher=publisher, gate=gate, limits=limits
                )
            resumed, failed = await uploads.recover()
            if resumed or failed:
                log.info("unfinished uploads after restart: %d resumed, %d marked failed", resumed, failed)

            async def redis_check() -> CheckResult:
                return await check_redis(redis)

            set_health_checks(app, {"redis": redis_check, "metadata": meta.health})
            yield
        finally:
            for stream in streams:
                await stream.close()
            if udp is not None:
                await udp.close()
            await uploads.close()
            await gate.close()
            await http.aclose()
            with contextlib.suppress(Exception):
                await meta.close()
            await redis.aclose()

    app = FastAPI(title="logwarden ingest", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.include_router(router)
    app.include_router(es_bulk.router)
    app.include_router(otlp.router)
    setup_service(app, service="ingest", settings=settings)
    app.add_middleware(es_bulk.ElasticProductMiddleware)

    async def api_error(request: Request, exc: Exception) -> Response:
        # Shippers parse errors under /es as Elasticsearch errors; everything else uses ours.
        assert isinstance(exc, ApiError)
        if request.url.path == "/es" or request.url.path.startswith("/es/"):
            return es_bulk.es_api_error(exc)
        return error_response(exc.status_code, exc.message, code=exc.code, details=exc.details, headers=exc.headers)

    app.add_exception_handler(ApiError, api_error)
    return app
