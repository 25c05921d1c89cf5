"""Tracing, metrics and JSON logging for every service.

- Traces: one TracerProvider per process named ``logwarden-<service>``; spans
  are exported over OTLP/HTTP only when an endpoint is configured.
- Metrics: prometheus-fastapi-instrumentator feeds the DESIGN.md §7 names in
  ``shared.metrics`` with the route template as ``endpoint``.
- Logs: one JSON object per line on stdout with ``trace_id``/``span_id``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import orjson
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_fastapi_instrumentator import Instrumentator
from prometheus_fastapi_instrumentator.metrics import Info
from starlette.responses import Response

from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS
from shared.settings import Settings

_process_provider: TracerProvider | None = None
_redis_instrumented = False


class JsonLogFormatter(logging.Formatter):
    """One JSON object per record, with the active span's trace and span ids."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a JSON line."""
        entry: dict[str, Any] = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send every logger's records to stdout as JSON lines."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonLogFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's own handlers would print plain text beside ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    # One line per upstream call would drown the services' own logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def otlp_endpoint(settings: Settings) -> str | None:
    """The OTLP/HTTP base endpoint from settings or the standard OTEL variable."""
    return settings.otlp_endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or None


def configure_tracing(service: str, settings: Settings) -> TracerProvider:
    """The process's TracerProvider for ``service``; exports over OTLP when configured.

    The first call in a process installs the provider globally; later calls
    (several apps in one test process) reuse it.
    """
    global _process_provider, _redis_instrumented
    if _process_provider is not None:
        return _process_provider
    provider = TracerProvider(resource=Resource.create({"service.name": f"logwarden-{service}"}))
    endpoint = otlp_endpoint(settings)
    if endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"), schedule_delay_millis=500
            )
        )
    trace.set_tracer_provider(provider)
    _process_provider = provider
    if not _redis_instrumented:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        RedisInstrumentor().instrument(tracer_provider=provider)
        _redis_instrumented = True
    return provider


def shutdown_tracing() -> None:
    """Flush spans still buffered (called at process exit)."""
    if _process_provider is not None:
        _process_provider.force_flush(timeout_millis=2000)


def instrument_app(app: FastAPI, provider: TracerProvider) -> None:
    """Add tracing and the HTTP Prometheus metrics to ``app`` (pure ASGI middleware)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="health,health/live,metrics", exclude_spans=["receive", "send"]
    )

    def record(info: Info) -> None:
        HTTP_REQUESTS.labels(info.method, info.modified_handler, info.modified_status).inc()
        HTTP_LATENCY.labels(info.method, info.modified_handler).observe(info.modified_duration)

    Instrumentator(
        should_group_status_codes=False,
        should_group_untemplated=True,
        excluded_handlers=["/metrics"],
    ).add(record).instrument(app)


def metrics_response() -> Response:
    """Prometheus text exposition of this process's registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def current_traceparent() -> str | None:
    """W3C traceparent of the active span, to carry across the stream."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def context_from_traceparent(traceparent: str | None) -> otel_context.Context:
    """An OpenTelemetry context whose parent is the span named by ``traceparent``."""
    if not traceparent:
        return otel_context.Context()
    return propagate.extract({"traceparent": traceparent})


def span_link(traceparent: str | None) -> trace.Link | None:
    """A link to the span named by ``traceparent`` (for batches that mix several traces)."""
    if not traceparent:
        return None
    span_context = trace.get_current_span(context_from_traceparent(traceparent)).get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None
