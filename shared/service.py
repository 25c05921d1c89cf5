"""What every service app has: health, liveness, metrics, errors, telemetry, internal auth."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from shared.errors import install_error_handlers
from shared.health import Check, run_checks
from shared.internal import InternalTokenMiddleware
from shared.settings import Settings
from shared.telemetry import configure_tracing, instrument_app, metrics_response


def set_health_checks(app: FastAPI, checks: Mapping[str, Check]) -> None:
    """Register the readiness checks of this service (called from its lifespan)."""
    app.state.health_checks = dict(checks)


async def readiness(app: FastAPI) -> dict[str, Any]:
    """Run this service's checks: ``{status, checks}``."""
    checks: Mapping[str, Check] = getattr(app.state, "health_checks", {})
    if not checks:
        return {"status": "unhealthy", "checks": {}, "details": "starting"}
    return await run_checks(checks)


def setup_service(app: FastAPI, *, service: str, settings: Settings, internal_auth: bool = True) -> None:
    """Attach health/liveness/metrics routes, error handlers, tracing and the internal-token check."""
    install_error_handlers(app)

    @app.get("/health/live", include_in_schema=False)
    async def live() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/health", include_in_schema=False)
    async def health(request: Request) -> Response:
        report = await readiness(request.app)
        report["service"] = service
        return JSONResponse(report, status_code=503 if report["status"] == "unhealthy" else 200)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return metrics_response()

    # The token check is added first so the metrics/tracing middleware wraps it
    # and refused requests are still counted.
    if internal_auth:
        app.add_middleware(InternalTokenMiddleware, token=settings.internal_token.get_secret_value())
    provider = configure_tracing(service, settings)
    app.state.tracer_provider = provider
    instrument_app(app, provider)
