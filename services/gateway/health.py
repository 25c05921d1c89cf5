"""``GET /api/health``: the gateway's own checks plus every service's readiness."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import psutil
from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from shared.health import worst
from shared.service import readiness

router = APIRouter(tags=["health"])
UPSTREAMS = ("ingest", "query", "realtime")


async def fetch_service_health(client: httpx.AsyncClient, name: str, base_url: str) -> dict[str, Any]:
    """One service's ``/health`` with the time it took; unreachable means unhealthy."""
    started = time.perf_counter()
    try:
        response = await client.get(f"{base_url}/health", timeout=3.0)
        body = response.json()
        status = body.get("status", "unhealthy") if response.status_code in (200, 503) else "unhealthy"
        checks = body.get("checks", {})
    except (httpx.HTTPError, ValueError) as exc:
        status, checks = "unhealthy", {"http": {"status": "unhealthy", "details": {"error": type(exc).__name__}}}
    return {
        "status": status,
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "checks": checks,
    }


def system_usage() -> dict[str, float]:
    """CPU, memory and disk use of the machine the gateway runs on."""
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_percent": psutil.virtual_memory().percent,
        "disk_percent": psutil.disk_usage("/").percent,
    }


@router.get(
    "/api/health",
    summary="Platform health",
    description="Aggregated readiness of gateway, ingest, query and realtime; 503 when unhealthy. No auth.",
)
async def platform_health(request: Request) -> JSONResponse:
    """Health of all four services and the machine."""
    settings = request.app.state.settings
    client: httpx.AsyncClient = request.app.state.health_client
    started = time.perf_counter()
    own = await readiness(request.app)
    gateway = {
        "status": own["status"],
        "response_time_ms": round((time.perf_counter() - started) * 1000, 2),
        "checks": own["checks"],
    }
    results = await asyncio.gather(
        *(fetch_service_health(client, name, settings.service_url(name)) for name in UPSTREAMS)
    )
    services = {"gateway": gateway, **dict(zip(UPSTREAMS, results, strict=True))}
    statuses = [s["status"] for s in services.values()]
    # A dead service makes the platform unhealthy: nothing works end to end without all four.
    status = worst(statuses)
    body = {"status": status, "services": services, "system": system_usage()}
    return JSONResponse(body, status_code=503 if status == "unhealthy" else 200)
