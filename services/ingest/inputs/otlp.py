"""OpenTelemetry logs over OTLP/HTTP: ``POST /v1/logs``, protobuf or JSON, gzip accepted.

Both encodings are turned into the same dict shape (OTLP/JSON: camelCase,
ids in hex, 64-bit integers as strings) and mapped by one function, so the
two cannot drift apart. The answer is an ExportLogsServiceResponse in the
request's encoding, with ``partial_success`` when some records were refused.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from starlette.responses import Response

from services.ingest.deps import BacklogOk, CurrentPrincipal, PublisherDep, SettingsDep
from services.ingest.inputs.body import read_body
from services.ingest.parsing import ParseLimits, RecordError, normalise_counted, normalise_otel_severity
from services.ingest.publish import PublishError
from services.ingest.service import apply_tenant, count_rejections, parse_limits
from shared.errors import ApiError
from shared.models import LogEvent

PROTOBUF: Final = "application/x-protobuf"
JSON: Final = "application/json"
MAX_ERROR_MESSAGE: Final = 500

# OpenTelemetry semantic-convention attributes -> LogEvent fields, best source first.
_FIELD_SOURCES: Final[dict[str, tuple[str, ...]]] = {
    "endpoint": ("http.route", "url.path", "http.target"),
    "method": ("http.request.method", "http.method"),
    "status_code": ("http.response.status_code", "http.status_code"),
    "response_time_ms": ("http.server.duration_ms", "duration_ms"),
    "user_id": ("user.id", "enduser.id"),
    "tenant_id": ("tenant.id", "tenant_id"),
    "client_ip": ("client.address", "http.client_ip", "net.peer.ip"),
}
_RESOURCE_FIELDS: Final[dict[str, str]] = {"service.name": "service", "host.name": "server"}

# gRPC status codes an OTLP/HTTP client understands, by HTTP status.
_GRPC_CODES: Final[dict[int, int]] = {400: 3, 401: 16, 403: 7, 404: 5, 413: 3, 415: 3, 422: 3, 429: 8, 503: 14}


def status_response(error: ApiError, *, protobuf: bool) -> Response:
    """An error as OTLP/HTTP clients expect it: a ``google.rpc.Status`` in the request's encoding."""
    status = Status(code=_GRPC_CODES.get(error.status_code, 13), message=error.message[:MAX_ERROR_MESSAGE])
    if protobuf:
        body, media = status.SerializeToString(), PROTOBUF
    else:
        body, media = json_format.MessageToJson(status, indent=None).encode(), JSON
    return Response(body, status_code=error.status_code, media_type=media, headers=error.headers)


class OtlpRoute(APIRoute):
    """Renders the route's errors (including its dependencies') as ``google.rpc.Status``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """The default handler, with ApiError turned into a Status response."""
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as error:
                media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
                return status_response(error, protobuf=media == PROTOBUF)

        return handle


router = APIRouter(tags=["opentelemetry"], route_class=OtlpRoute)


class OtlpDecodeError(ValueError):
    """The body is not an OTLP logs request."""


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def any_value(value: Any) -> Any:
    """A Python value from an OTLP AnyValue dict (kvlist -> dict, array -> list)."""
    if not isinstance(value, dict):
        return value
    for key in ("stringValue", "string_value"):
        if key in value:
            return value[key]
    for key in ("boolValue", "bool_value"):
        if key in value:
            return bool(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            return int(value[key])
    for key in ("doubleValue", "double_value"):
        if key in value:
            return float(value[key])
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [any_value(v) for v in (value[key] or {}).get("values", [])]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return key_values((value[key] or {}).get("values", []))
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            return value[key]  # base64 text, as OTLP/JSON carries it
    return None


def key_values(items: Any) -> dict[str, Any]:
    """``[{key, value: AnyValue}]`` -> dict."""
    out: dict[str, Any] = {}
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            out[item["key"]] = any_value(item.get("value"))
    return out


def _hex_id(value: Any, size: int, *, base64_ids: bool) -> str | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if not base64_ids and len(text) == size * 2:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            return None
    else:
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None
    if len(raw) != size or not any(raw):
        return None
    return raw.hex()


def _nanos(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def otlp_record(
    resource: dict[str, Any], scope: dict[str, Any], log_record: dict[str, Any], *, base64_ids: bool
) -> dict[str, Any]:
    """The record (for the normaliser) of one OTLP LogRecord with its resource and scope."""
    record: dict[str, Any] = {}
    body = any_value(log_record.get("body"))
    if isinstance(body, dict):
        record.update(body)  # nested values are flattened by the normaliser
        if not any(k in body for k in ("message", "msg", "log", "text", "body")):
            record["message"] = orjson.dumps(body, default=str).decode()
    elif body is not None:
        record["message"] = body if isinstance(body, str) else orjson.dumps(body, default=str).decode()
    for key, value in resource.items():
        target = _RESOURCE_FIELDS.get(key)
        record[target if target else f"resource.{key}"] = value
    if scope.get("name"):
        record["otel.scope.name"] = scope["name"]
    if scope.get("version"):
        record["otel.scope.version"] = scope["version"]
    attributes = key_values(log_record.get("attributes"))
    for target, names in _FIELD_SOURCES.items():
        for name in names:
            if name in attributes:
                record[target] = attributes.pop(name)
                break
    record.update(attributes)
    nanos = _nanos(_get(log_record, "timeUnixNano", "time_unix_nano")) or _nanos(
        _get(log_record, "observedTimeUnixNano", "observed_time_unix_nano")
    )
    if nanos:
        record["timestamp"] = datetime.fromtimestamp(nanos / 1e9, tz=UTC)
    level = normalise_otel_severity(_get(log_record, "severityNumber", "severity_number"))
    text = _get(log_record, "severityText", "severity_text")
    if level is not None:
        record["level"] = level
    elif text:
        record["level"] = text
    trace_id = _hex_id(_get(log_record, "traceId", "trace_id"), 16, base64_ids=base64_ids)
    span_id = _hex_id(_get(log_record, "spanId", "span_id"), 8, base64_ids=base64_ids)
    if trace_id:
        record["trace_id"] = trace_id
    if span_id:
        record["span_id"] = span_id
    return record


@dataclass
class OtlpResult:
    """Events to publish and what was refused."""

    events: list[LogEvent] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)


def decode_request(body: bytes, *, protobuf: bool) -> dict[str, Any]:
    """The request as an OTLP/JSON-shaped dict (protobuf is converted, ids stay base64 there)."""
    if protobuf:
        try:
            message = ExportLogsServiceRequest.FromString(body)
        except DecodeError as exc:
            raise OtlpDecodeError("the body is not an OTLP ExportLogsServiceRequest (protobuf)") from exc
        return json_format.MessageToDict(message)
    try:
        document = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise OtlpDecodeError(f"the body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError("the body is not an OTLP/JSON object")
    return document


def map_request(body: bytes, *, protobuf: bool, limits: ParseLimits, tenant_id: str | None) -> OtlpResult:
    """Decode and map every LogRecord of a request (runs in a worker thread)."""
    document = decode_request(body, protobuf=protobuf)
    result = OtlpResult()
    for resource_logs in _get(document, "resourceLogs", "resource_logs") or []:
        resource = key_values(((resource_logs or {}).get("resource") or {}).get("attributes"))
        for scope_logs in _get(resource_logs, "scopeLogs", "scope_logs") or []:
            scope = (scope_logs or {}).get("scope") or {}
            for log_record in _get(scope_logs, "logRecords", "log_records") or []:
                try:
                    record = otlp_record(resource, scope, log_record or {}, base64_ids=protobuf)
                    event, _ = normalise_counted(record, source="otlp", limits=limits)
                except RecordError as exc:
                    result.rejected.append(exc.reason)
                    continue
                except (TypeError, ValueError, OverflowError) as exc:
                    result.rejected.append(f"invalid log record: {exc}")
                    continue
                reason = apply_tenant(event, tenant_id)
                if reason is None:
                    result.events.append(event)
                else:
                    result.rejected.append(reason)
    return result


def export_response(rejected: list[str], *, protobuf: bool) -> Response:
    """ExportLogsServiceResponse in the request's encoding."""
    message = ExportLogsServiceResponse()
    if rejected:
        message.partial_success.rejected_log_records = len(rejected)
        summary = f"{len(rejected)} log record(s) rejected; first: {rejected[0]}"
        message.partial_success.error_message = summary[:MAX_ERROR_MESSAGE]
    if protobuf:
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)


@router.post("/v1/logs")
async def export_logs(
    request: Request, _: BacklogOk, settings: SettingsDep, publisher: PublisherDep, principal: CurrentPrincipal
) -> Response:
    """OTLP/HTTP logs export (``application/x-protobuf`` or ``application/json``)."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media not in {PROTOBUF, JSON}:
        raise ApiError(415, f"send {PROTOBUF} or {JSON}")
    protobuf = media == PROTOBUF
    body = await read_body(request, settings=settings, input_name="otlp")
    try:
        result = await asyncio.to_thread(
            map_request, body, protobuf=protobuf, limits=parse_limits(settings), tenant_id=principal.tenant_id
        )
    except OtlpDecodeError as exc:
        raise ApiError(400, str(exc)) from None
    count_rejections("otlp", result.rejected)
    try:
        await publisher.publish(result.events, input_name="otlp", fmt="protobuf" if protobuf else "json")
    except PublishError as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    return export_response(result.rejected, protobuf=protobuf)
