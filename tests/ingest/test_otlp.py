"""OTLP/HTTP logs: the OpenTelemetry SDK's exporter against a real uvicorn server, and OTLP/JSON."""

from __future__ import annotations

import asyncio
import gzip
import time

import httpx
import orjson
from fastapi import FastAPI
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from redis.asyncio import Redis

from services.ingest.app import create_app
from shared.settings import Settings
from tests.ingest.conftest import ADMIN, TENANT_KEY, UvicornFactory, client_for, stream_events, wait_for_events

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331


def _export_with_sdk(url: str, headers: dict[str, str]) -> None:
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs", headers=headers, compression=Compression.Gzip, timeout=10)
    provider = LoggerProvider(
        resource=Resource.create({"service.name": "checkout", "host.name": "node-7", "deployment.environment": "prod"})
    )
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    logger = provider.get_logger("tests.otlp", "1.2.3")
    context = trace.set_span_in_context(
        NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1)))
    )
    logger.emit(
        timestamp=1_704_067_200_123_000_000,
        context=context,
        severity_number=SeverityNumber.ERROR,
        severity_text="ERROR",
        body="payment declined",
        attributes={
            "http.route": "/api/billing",
            "url.path": "/api/billing/42",
            "http.request.method": "POST",
            "http.response.status_code": 502,
            "user.id": "user_9",
            "tenant.id": "tenant_3",
            "retry": True,
        },
    )
    logger.emit(severity_number=SeverityNumber.INFO, body={"msg": "structured", "order": {"id": 7}})
    provider.shutdown()


async def test_sdk_exporter_protobuf_over_real_http(
    ingest_settings: Settings, redis: Redis, serve: UvicornFactory
) -> None:
    url = await serve(create_app(ingest_settings))
    headers = ADMIN.headers(ingest_settings.internal_token.get_secret_value())
    await asyncio.to_thread(_export_with_sdk, url, headers)

    first, second = await wait_for_events(redis, 2)
    assert first["timestamp"] == "2024-01-01T00:00:00.123Z"
    assert (first["level"], first["message"], first["source"]) == ("ERROR", "payment declined", "otlp")
    assert (first["service"], first["server"]) == ("checkout", "node-7")
    assert (first["endpoint"], first["method"], first["status_code"]) == ("/api/billing", "POST", 502)
    assert (first["user_id"], first["tenant_id"]) == ("user_9", "tenant_3")
    assert (first["trace_id"], first["span_id"]) == (f"{TRACE_ID:032x}", f"{SPAN_ID:016x}")
    assert first["attrs"]["resource.deployment.environment"] == "prod"
    assert first["attrs"]["url.path"] == "/api/billing/42"
    assert first["attrs"]["otel.scope.name"] == "tests.otlp"
    assert second["message"] == "structured" and second["attrs"]["order.id"] == "7"
    assert second["level"] == "INFO"


async def test_otlp_json_with_partial_success(app: FastAPI, ingest_settings: Settings, redis: Redis) -> None:
    now_ns = str(time.time_ns())
    document = {
        "resourceLogs": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api"}}]},
                "scopeLogs": [
                    {
                        "scope": {"name": "json-test"},
                        "logRecords": [
                            {
                                "timeUnixNano": "0",
                                "observedTimeUnixNano": now_ns,
                                "severityNumber": 13,
                                "body": {
                                    "kvlistValue": {
                                        "values": [
                                            {"key": "message", "value": {"stringValue": "slow query"}},
                                            {"key": "duration_ms", "value": {"doubleValue": 1234.5}},
                                        ]
                                    }
                                },
                                "traceId": "5b8efff798038103d269b633813fc60c",
                                "spanId": "eee19b7ec3c1b174",
                                "attributes": [{"key": "http.status_code", "value": {"intValue": "200"}}],
                            },
                            {
                                "body": {"stringValue": "other tenant"},
                                "attributes": [{"key": "tenant.id", "value": {"stringValue": "globex"}}],
                            },
                            {
                                "body": {"stringValue": "bad"},
                                "attributes": [{"key": "http.response.status_code", "value": {"stringValue": "x"}}],
                            },
                        ],
                    }
                ],
            }
        ]
    }
    async with client_for(app, ingest_settings, TENANT_KEY) as tenant:
        response = await tenant.post(
            "/v1/logs",
            content=gzip.compress(orjson.dumps(document)),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    partial = response.json()["partialSuccess"]
    assert partial["rejectedLogRecords"] == "2"
    assert "status_code" in partial["errorMessage"] or "tenant" in partial["errorMessage"]
    (event,) = await stream_events(redis)
    assert (event["message"], event["level"], event["service"]) == ("slow query", "WARNING", "api")
    assert (event["response_time_ms"], event["status_code"], event["tenant_id"]) == (1234.5, 200, "acme")
    assert (event["trace_id"], event["span_id"]) == ("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")


async def test_otlp_protobuf_response_and_bad_bodies(client: httpx.AsyncClient) -> None:
    ok = await client.post("/v1/logs", content=b"", headers={"content-type": "application/x-protobuf"})
    assert ok.status_code == 200 and ok.headers["content-type"] == "application/x-protobuf"
    assert not ExportLogsServiceResponse.FromString(ok.content).HasField("partial_success")
    bad = await client.post("/v1/logs", content=b"\xff\xff\xff", headers={"content-type": "application/x-protobuf"})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/x-protobuf"
    status = Status.FromString(bad.content)  # OTLP/HTTP: errors are google.rpc.Status
    assert status.code == 3 and "ExportLogsServiceRequest" in status.message
    bad_json = await client.post("/v1/logs", content=b"[1", headers={"content-type": "application/json"})
    assert bad_json.status_code == 400
    assert orjson.loads(bad_json.content)["code"] == 3 and "not JSON" in orjson.loads(bad_json.content)["message"]
    wrong = await client.post("/v1/logs", content=b"{}", headers={"content-type": "text/plain"})
    assert wrong.status_code == 415
