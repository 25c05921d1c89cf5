"""FastAPI dependencies of the ingest routes (aliases in ``deps.py``)."""

from __future__ import annotations

from fastapi import Request

from services.ingest.publish import BacklogGate, Publisher
from services.ingest.runtime import IngestRuntime
from shared.errors import ApiError
from shared.metrics import BACKPRESSURE
from shared.store.base import MetaStore

RETRY_AFTER_SECONDS = "1"


def get_runtime(request: Request) -> IngestRuntime:
    """The ingest runtime opened in the lifespan."""
    runtime: IngestRuntime = request.app.state.ingest
    return runtime


def get_meta_store(request: Request) -> MetaStore:
    """The MetaStore (files)."""
    return get_runtime(request).meta


def get_publisher(request: Request) -> Publisher:
    """The stream publisher."""
    return get_runtime(request).publisher


def get_gate(request: Request) -> BacklogGate:
    """The backlog gate."""
    return get_runtime(request).gate


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
