"""Elasticsearch-compatible API for log shippers (Filebeat, Logstash, Fluent Bit, Vector, rsyslog).

Shippers probe a cluster before sending: the root document (version), the
license, templates and ILM policies. Those probes get answers that let them
proceed; ``_bulk`` takes ``index``/``create`` actions (``delete``/``update``
are answered per item with a 400: logwarden is append-only).
Every response under ``/es`` carries ``X-Elastic-Product: Elasticsearch``
(the official clients refuse a server without it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.ingest.deps import BacklogOk, CurrentPrincipal, PublisherDep, RuntimeDep, SettingsDep
from services.ingest.inputs.body import read_body
from services.ingest.parsing import ParseLimits, RecordError, normalise_counted
from services.ingest.publish import Publisher, PublishError
from services.ingest.service import apply_tenant, count_rejections, parse_limits
from shared.errors import ApiError
from shared.internal import Principal
from shared.models import LogEvent
from shared.settings import Settings

ES_VERSION: Final = "8.11.0"
CLUSTER_NAME: Final = "logwarden"
CLUSTER_UUID: Final = str(uuid.uuid5(uuid.NAMESPACE_DNS, "logwarden.es-compat"))
PRODUCT_HEADER: Final = (b"x-elastic-product", b"Elasticsearch")
_JSON: Final = "application/json"
# Resources shippers install at start; PUT is acknowledged and remembered so HEAD/GET find them.
_RESOURCE_KINDS: Final = ("_index_template", "_template", "_component_template", "_ilm/policy", "_ingest/pipeline")
_ERROR_TYPES: Final = {
    400: "illegal_argument_exception",
    401: "security_exception",
    403: "security_exception",
    404: "resource_not_found_exception",
    413: "content_too_long_exception",
    415: "media_type_header_exception",
    429: "es_rejected_execution_exception",
    503: "unavailable_shards_exception",
}

router = APIRouter(prefix="/es", tags=["elasticsearch-compatible"])


class ElasticProductMiddleware:
    """Adds ``X-Elastic-Product: Elasticsearch`` to every response under ``/es``."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass through, tagging /es responses."""
        if scope["type"] != "http" or not (scope["path"] == "/es" or scope["path"].startswith("/es/")):
            await self._app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), PRODUCT_HEADER]
            await send(message)

        await self._app(scope, receive, tagged)


def es_error_body(status: int, reason: str, *, error_type: str | None = None) -> dict[str, Any]:
    """An error document shaped like Elasticsearch's."""
    kind = error_type or _ERROR_TYPES.get(status, "exception")
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], "type": kind, "reason": reason}, "status": status}


def es_response(body: Any, status: int = 200, *, head: bool = False, headers: dict[str, str] | None = None) -> Response:
    """JSON response (empty for HEAD, with the length GET would have)."""
    payload = orjson.dumps(body)
    if head:
        response = Response(status_code=status, media_type=_JSON, headers=headers)
        response.headers["content-length"] = str(len(payload))
        return response
    return Response(payload, status_code=status, media_type=_JSON, headers=headers)


def root_info() -> dict[str, Any]:
    """The document of ``GET /`` on an Elasticsearch 8.11 node."""
    return {
        "name": "logwarden",
        "cluster_name": CLUSTER_NAME,
        "cluster_uuid": CLUSTER_UUID,
        "version": {
            "number": ES_VERSION,
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "d9ec3fa628c7b0ba3d25692e277ba26814820b20",
            "build_date": "2023-11-04T10:04:57.184859352Z",
            "build_snapshot": False,
            "lucene_version": "9.8.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


# ------------------------------------------------------------------------------------ _bulk


class BulkSyntaxError(ValueError):
    """The body is not a bulk request at all (answered 400 for the whole request, as ES does)."""


@dataclass
class BulkResult:
    """Per-item outcomes in request order, and the events to publish."""

    items: list[dict[str, Any]] = field(default_factory=list)
    events: list[LogEvent] = field(default_factory=list)
    rejected_reasons: list[str] = field(default_factory=list)


def _item_error(op: str, index: str | None, doc_id: str | None, status: int, kind: str, reason: str) -> dict[str, Any]:
    return {op: {"_index": index, "_id": doc_id, "status": status, "error": {"type": kind, "reason": reason}}}


def parse_bulk(body: bytes, *, default_index: str | None, limits: ParseLimits, tenant_id: str | None) -> BulkResult:
    """Parse NDJSON action/source pairs into events and per-item results (runs in a worker thread)."""
    result = BulkResult()
    lines = body.split(b"\n")
    line_no = 0
    total = len(lines)
    seq = 0
    while line_no < total:
        raw = lines[line_no].strip()
        line_no += 1
        if not raw:
            continue
        try:
            action = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise BulkSyntaxError(f"Malformed action/metadata line [{line_no}], expected START_OBJECT") from None
        if not isinstance(action, dict) or len(action) != 1:
            raise BulkSyntaxError(f"Malformed action/metadata line [{line_no}], expected a single action object")
        ((op, meta),) = action.items()
        if op not in {"index", "create", "delete", "update"}:
            raise BulkSyntaxError(
                f"Malformed action/metadata line [{line_no}], expected field [create], [delete], [index] or "
                f"[update] but found [{op}]"
            )
        if not isinstance(meta, dict):
            raise BulkSyntaxError(f"Malformed action/metadata line [{line_no}], expected an object after [{op}]")
        index = meta.get("_index") or default_index
        index = str(index) if index is not None else None
        given_id = meta.get("_id")
        doc_id = str(given_id) if given_id is not None else None
        if op == "delete":
            result.items.append(
                _item_error(
                    op,
                    index,
                    doc_id,
                    400,
                    "illegal_argument_exception",
                    "delete is not supported: logwarden is append-only",
                )
            )
            result.rejected_reasons.append("delete not supported")
            continue
        if line_no >= total or not lines[line_no].strip():
            raise BulkSyntaxError(f"The bulk request is missing the source of the action on line [{line_no}]")
        source = lines[line_no]
        line_no += 1
        if op == "update":
            result.items.append(
                _item_error(
                    op,
                    index,
                    doc_id,
                    400,
                    "illegal_argument_exception",
                    "update is not supported: logwarden is append-only",
                )
            )
            result.rejected_reasons.append("update not supported")
            continue
        if index is None:
            result.items.append(
                _item_error(
                    op,
                    None,
                    doc_id,
                    400,
                    "action_request_validation_exception",
                    "Validation Failed: 1: index is missing;",
                )
            )
            result.rejected_reasons.append("index is missing")
            continue
        outcome = _bulk_event(source, index=index, doc_id=doc_id, limits=limits, tenant_id=tenant_id)
        if isinstance(outcome, LogEvent):
            result.events.append(outcome)
            result.items.append(
                {
                    op: {
                        "_index": index,
                        "_id": doc_id or outcome.id,
                        "_version": 1,
                        "result": "created",
                        "_shards": {"total": 1, "successful": 1, "failed": 0},
                        "_seq_no": seq,
                        "_primary_term": 1,
                        "status": 201,
                    }
                }
            )
            seq += 1
        else:
            status, kind, reason = outcome
            result.items.append(_item_error(op, index, doc_id, status, kind, reason))
            result.rejected_reasons.append(reason)
    return result


def _bulk_event(
    source: bytes, *, index: str, doc_id: str | None, limits: ParseLimits, tenant_id: str | None
) -> LogEvent | tuple[int, str, str]:
    if len(source) > limits.max_event_bytes:
        return 400, "document_parsing_exception", f"document larger than {limits.max_event_bytes} bytes"
    try:
        document = orjson.loads(source)
    except orjson.JSONDecodeError as exc:
        return 400, "document_parsing_exception", f"invalid JSON: {exc}"
    if not isinstance(document, dict):
        return 400, "document_parsing_exception", "JSON value is not an object"
    try:
        event, _ = normalise_counted(document, source="bulk", limits=limits)
    except RecordError as exc:
        return 400, "document_parsing_exception", exc.reason
    event.attrs["es_index"] = index
    if doc_id is not None:
        event.attrs["es_id"] = doc_id
    reason = apply_tenant(event, tenant_id)
    if reason is not None:
        return 403, "security_exception", reason
    return event


async def _bulk(
    request: Request, index: str | None, settings: Settings, publisher: Publisher, principal: Principal
) -> Response:
    started = time.perf_counter()
    body = await read_body(request, settings=settings, input_name="bulk")
    try:
        result = await asyncio.to_thread(
            parse_bulk, body, default_index=index, limits=parse_limits(settings), tenant_id=principal.tenant_id
        )
    except BulkSyntaxError as exc:
        return es_response(es_error_body(400, str(exc)), 400)
    count_rejections("bulk", result.rejected_reasons)
    try:
        await publisher.publish(result.events, input_name="bulk", fmt="es_bulk")
    except PublishError as exc:
        return es_response(es_error_body(503, str(exc)), 503, headers={"Retry-After": "5"})
    took = int((time.perf_counter() - started) * 1000)
    return es_response({"took": took, "errors": bool(result.rejected_reasons), "items": result.items})


@router.api_route("/_bulk", methods=["POST", "PUT"])
async def bulk(
    request: Request, _: BacklogOk, settings: SettingsDep, publisher: PublisherDep, principal: CurrentPrincipal
) -> Response:
    """Elasticsearch ``_bulk``: NDJSON action/source pairs; index/create accepted."""
    return await _bulk(request, None, settings, publisher, principal)


@router.api_route("/{index}/_bulk", methods=["POST", "PUT"])
async def bulk_index(
    index: str,
    request: Request,
    _: BacklogOk,
    settings: SettingsDep,
    publisher: PublisherDep,
    principal: CurrentPrincipal,
) -> Response:
    """Elasticsearch ``{index}/_bulk``: ``index`` is the default ``_index`` of the actions."""
    return await _bulk(request, index, settings, publisher, principal)


# ------------------------------------------------------------------------------------ probes


@router.api_route("", methods=["GET", "HEAD"])
async def es_root(request: Request) -> Response:
    """Cluster info (version 8.11.0) that shippers read at start."""
    return es_response(root_info(), head=request.method == "HEAD")


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def es_root_slash(request: Request) -> Response:
    """Same as ``GET /es``."""
    return es_response(root_info(), head=request.method == "HEAD")


def _license() -> dict[str, Any]:
    return {
        "status": "active",
        "uid": CLUSTER_UUID,
        "type": "basic",
        "issue_date": "2024-01-01T00:00:00.000Z",
        "issue_date_in_millis": 1704067200000,
        "max_nodes": 1000,
        "max_resource_units": None,
        "issued_to": CLUSTER_NAME,
        "issuer": "elasticsearch",
        "start_date_in_millis": -1,
    }


def _resource(path: str) -> tuple[str, str] | None:
    for kind in _RESOURCE_KINDS:
        if path.startswith(kind + "/") and len(path) > len(kind) + 1:
            return kind, path[len(kind) + 1 :]
    return None


def _resource_document(kind: str, name: str) -> dict[str, Any]:
    if kind == "_index_template":
        return {"index_templates": [{"name": name, "index_template": {"index_patterns": [], "composed_of": []}}]}
    if kind == "_component_template":
        return {"component_templates": [{"name": name, "component_template": {"template": {}}}]}
    if kind == "_ilm/policy":
        return {name: {"version": 1, "modified_date": "2024-01-01T00:00:00.000Z", "policy": {"phases": {}}}}
    return {name: {}}


def answer_probe(method: str, path: str, known: set[tuple[str, str]]) -> tuple[int, Any]:
    """(status, body) for what shippers probe at start; 404 with an ES error for the rest."""
    path = path.strip("/")
    if path == "_license" and method in {"GET", "HEAD"}:
        return 200, {"license": _license()}
    if path == "_xpack" and method in {"GET", "HEAD"}:
        return 200, {
            "build": {"hash": root_info()["version"]["build_hash"], "date": root_info()["version"]["build_date"]},
            "license": {"uid": CLUSTER_UUID, "type": "basic", "mode": "basic", "status": "active"},
            "features": {
                "ilm": {"available": True, "enabled": True},
                "security": {"available": True, "enabled": True},
                "monitoring": {"available": True, "enabled": False},
            },
            "tagline": "You know, for X",
        }
    if path.split("/")[0] == "_nodes" and method in {"GET", "HEAD"}:
        return 200, {
            "_nodes": {"total": 1, "successful": 1, "failed": 0},
            "cluster_name": CLUSTER_NAME,
            "nodes": {
                "logwarden": {
                    "name": "logwarden",
                    "version": ES_VERSION,
                    "roles": ["data", "ingest", "master"],
                    "http": {"publish_address": "127.0.0.1:9200"},
                }
            },
        }
    if path.startswith("_cluster/health") and method in {"GET", "HEAD"}:
        return 200, {
            "cluster_name": CLUSTER_NAME,
            "status": "green",
            "timed_out": False,
            "number_of_nodes": 1,
            "number_of_data_nodes": 1,
            "active_primary_shards": 0,
            "active_shards": 0,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": 0,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0,
        }
    resource = _resource(path)
    if resource is not None:
        kind, name = resource
        if method in {"PUT", "POST"}:
            known.add(resource)
            return 200, {"acknowledged": True}
        if resource in known:
            return 200, _resource_document(kind, name)
        return 404, es_error_body(404, f"{kind.lstrip('_')} [{name}] missing")
    return 404, es_error_body(404, f"no handler found for [{method}] /{path} in logwarden's Elasticsearch API")


@router.api_route("/{es_path:path}", methods=["GET", "HEAD", "PUT", "POST"])
async def es_probe(es_path: str, request: Request, runtime: RuntimeDep) -> Response:
    """What shippers probe at start (license, templates, ILM, nodes, health); 404 otherwise."""
    if request.method in {"PUT", "POST"}:
        await read_body(request, settings=runtime.settings, input_name="bulk")  # bounded, then dropped
    status, body = answer_probe(request.method, es_path, runtime.es_resources)
    return es_response(body, status, head=request.method == "HEAD")


def es_api_error(exc: ApiError) -> Response:
    """An ApiError raised under /es, in Elasticsearch's error shape."""
    return es_response(es_error_body(exc.status_code, exc.message), exc.status_code, headers=exc.headers)
