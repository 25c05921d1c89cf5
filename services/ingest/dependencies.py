"""FastAPI dependencies of the ingest routes (aliases in ``deps.py``)."""

from __future__ import annotations

from fastapi import Request

from services.ingest.publish import BacklogGate, Publisher
from services.ingest.runtime import IngestRuntime
from shared.errors import ApiError
from shared.internal import Principal
from shared.metrics import BACKPRESSURE
from shared.settings import Settings
from shared.store.base import MetaStore

RETRY_AFTER_SECONDS = "1"


def get_runtime(request: Request) -> IngestRuntime:
    """The ingest runtime opened in the lifespan."""
    runtime: IngestRuntime = request.app.state.ingest
    return runtime


def get_settings(request: Request) -> Settings:
    """The service's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_meta_store(request: Request) -> MetaStore:
    """The MetaStore (files)."""
    return get_runtime(request).meta


def get_publisher(request: Request) -> Publisher:
    """The stream publisher."""
    return get_runtime(request).publisher


def get_gate(request: Request) -> BacklogGate:
    """The backlog gate."""
    return get_runtime(request).gate


def get_principal(request: Request) -> Principal:
    """The caller forwarded by the gateway; 401 when none was (token-only requests)."""
    principal = Principal.from_headers(dict(request.headers))
    if principal is None:
        raise ApiError(401, "no caller identity was forwarded")
    return principal


def get_admin(request: Request) -> Principal:
    """The caller if admin, else 403 (the gateway checks too: defence in depth)."""
    principal = get_principal(request)
    if not principal.is_admin:
        raise ApiError(403, "this action needs the admin role")
    return principal


def _input_name(request: Request) -> str:
    path = request.url.path
    if path.startswith("/es"):
        return "bulk"
    if path.startswith("/v1/"):
        return "otlp"
    return "http"


async def check_backlog(request: Request) -> None:
    """429 with Retry-After while the indexer's backlog is over the limit (HTTP inputs)."""
    gate = get_gate(request)
    if await gate.over_limit():
        input_name = _input_name(request)
        BACKPRESSURE.labels(input_name).inc()
        raise ApiError(
            429,
            "ingest is busy: the indexer is behind, retry shortly",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
