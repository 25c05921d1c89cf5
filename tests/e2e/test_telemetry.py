"""One trace per request across processes, and metrics that the deploy configs really use."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.e2e.otlp_receiver import otlp_receiver
from tests.e2e.platform import SERVICES, Platform, run_platform
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.e2e


def _login(client: httpx.Client, platform: Platform) -> None:
    response = client.post(
        "/api/auth/login", json={"username": platform.admin_username, "password": platform.admin_password}
    )
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = response.json()["csrf_token"]


def test_one_post_yields_one_trace_across_gateway_ingest_and_query(tmp_path: Path) -> None:
    port = free_port()
    with (
        otlp_receiver(port) as sink,
        run_platform(tmp_path, LOGWARDEN_OTLP_ENDPOINT=f"http://127.0.0.1:{port}") as platform,
        httpx.Client(base_url=platform.url, timeout=30) as client,
    ):
        _login(client, platform)
        response = client.post("/api/logs", json={"message": "traced event", "service": "tracing-test"})
        assert response.status_code == 202, response.text

        def gateway_trace_id() -> str | None:
            for span in sink.spans():
                if span.service == "logwarden-gateway" and span.name.startswith("POST /api/logs"):
                    return span.trace_id
            return None

        trace_id = wait_until(gateway_trace_id, timeout=15, what="the gateway's span of POST /api/logs")

        def services_in_trace() -> set[str]:
            found = {s.service for s in sink.spans() if s.trace_id == trace_id or trace_id in s.links}
            return found if {"logwarden-gateway", "logwarden-ingest", "logwarden-query"} <= found else set()

        found = wait_until(services_in_trace, timeout=20, what="ingest and indexer spans in the same trace")
        assert {"logwarden-gateway", "logwarden-ingest", "logwarden-query"} <= found

        def redis_publish_spans() -> list[object]:
            return [s for s in sink.spans() if s.trace_id == trace_id and s.name.upper().startswith("XADD")]

        # Spans reach the receiver in batches per process; the XADD may come in a later one.
        assert wait_until(redis_publish_spans, timeout=15, what="the XADD span in the request's trace")


def metric_names_in_deploy() -> set[str]:
    """Metric names used by PromQL expressions in deploy/observability (rules and dashboards)."""
    from tests.deploy import promql_names
    from tests.deploy.test_deploy import dashboards, load_rules, prometheus_exprs

    exprs = [rule["expr"] for rule in load_rules()]
    exprs += [expr for board in dashboards().values() for expr in prometheus_exprs(board)]
    return set().union(*(promql_names.metric_names(expr) for expr in exprs))


def _exported(text: str) -> set[str]:
    return set(re.findall(r"^# TYPE (\S+) ", text, flags=re.MULTILINE))


def _with_samples(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{|\s)", text, flags=re.MULTILINE)}


def test_every_metric_in_deploy_configs_is_exported(platform: Platform, admin_client: httpx.Client) -> None:
    # Some traffic so that labelled metrics have samples.
    assert admin_client.post("/api/logs", json={"message": "metrics check", "level": "ERROR"}).status_code == 202
    assert admin_client.get("/api/search", params={"q": "metrics"}).status_code == 200
    assert admin_client.get("/api/stats").status_code == 200
    exported: set[str] = set()
    sampled: set[str] = set()
    for name in SERVICES:
        text = httpx.get(f"{platform.service_url(name)}/metrics", timeout=5).text
        exported |= _exported(text)
        sampled |= _with_samples(text)
    used = metric_names_in_deploy()
    assert used, "the deploy configs use metrics"
    base_names = {re.sub(r"_(bucket|sum|count|total|created)$", "", n) for n in exported} | exported
    missing = {
        n
        for n in used
        if n != "up" and n not in base_names and re.sub(r"_(bucket|sum|count)$", "", n) not in base_names
    }
    assert missing == set(), f"used in deploy/observability but exported by no service: {sorted(missing)}"
    for core in ("http_requests_total", "http_request_latency_seconds_bucket", "logwarden_ingested_events_total"):
        assert core in sampled, f"{core} has no samples after traffic"
