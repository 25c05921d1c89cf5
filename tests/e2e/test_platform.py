"""`logwarden up`: the four services start healthy, expose metrics, and recover from a crash."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import psutil
import pytest

from tests.e2e.platform import SERVICES, Platform, run_platform, wait_ready_platform
from tests.helpers import free_port, wait_until

pytestmark = pytest.mark.e2e


def test_health_reports_all_four_services_healthy(platform: Platform) -> None:
    body = platform.health()
    assert body["status"] == "healthy", body
    services = body["services"]
    assert set(services) == set(SERVICES)
    for name, report in services.items():
        assert report["status"] == "healthy", (name, report)
        assert report["response_time_ms"] >= 0
    assert set(services["query"]["checks"]) >= {"redis", "store", "metadata"}
    assert {"cpu_percent", "memory_percent"} <= set(body["system"])


def test_every_service_exposes_metrics_and_liveness(platform: Platform) -> None:
    for name in SERVICES:
        base = platform.service_url(name)
        metrics = httpx.get(f"{base}/metrics", timeout=5)
        assert metrics.status_code == 200
        assert "http_request_latency_seconds" in metrics.text
        assert httpx.get(f"{base}/health/live", timeout=5).json() == {"status": "alive"}


def test_services_refuse_requests_that_bypass_the_gateway(platform: Platform) -> None:
    response = httpx.get(f"{platform.service_url('query')}/api/search", timeout=5)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_docs_list_routes_of_all_services(platform: Platform, admin_client: httpx.Client) -> None:
    document = admin_client.get("/openapi.json").json()
    paths = document["paths"]
    for path in ("/api/health", "/api/auth/login", "/api/upload", "/api/logs", "/api/search", "/api/stats"):
        assert path in paths, path
    assert admin_client.get("/docs").status_code == 200
    assert httpx.get(f"{platform.url}/openapi.json").status_code == 401


def _service_pid(platform: Platform, name: str) -> int:
    parent = psutil.Process(platform.process.pid)
    for child in parent.children():
        if child.cmdline()[-2:] == ["serve", name]:
            return child.pid
    raise AssertionError(f"no {name} process")


def test_killed_service_is_reported_and_restarted(tmp_path: Path) -> None:
    with run_platform(tmp_path) as platform:
        old_pid = _service_pid(platform, "realtime")
        os.kill(old_pid, signal.SIGKILL)

        def reported_unhealthy() -> bool:
            response = httpx.get(f"{platform.url}/api/health", timeout=5)
            return response.status_code == 503 and response.json()["services"]["realtime"]["status"] == "unhealthy"

        wait_until(reported_unhealthy, timeout=10, what="/api/health to report realtime down")
        wait_until(lambda: platform.health()["status"] == "healthy", timeout=30, what="realtime to be restarted")
        assert _service_pid(platform, "realtime") != old_pid
        assert "realtime exited unexpectedly" in platform.logs()


def test_service_crashing_during_start_is_restarted(tmp_path: Path) -> None:
    with run_platform(tmp_path, wait_ready=False) as platform:
        # Kill realtime as soon as it exists, before `up` has seen the platform healthy.
        pid = wait_until(lambda: _service_pid_or_none(platform, "realtime"), timeout=30, what="realtime to spawn")
        os.kill(pid, signal.SIGKILL)
        wait_ready_platform(platform)
        assert _service_pid(platform, "realtime") != pid
        assert "realtime exited unexpectedly" in platform.logs()


def _service_pid_or_none(platform: Platform, name: str) -> int | None:
    try:
        return _service_pid(platform, name)
    except AssertionError:
        return None


def test_port_clash_gives_one_line_error(tmp_path: Path, platform: Platform) -> None:
    import subprocess
    import sys

    env = dict(platform.env)
    env["LOGWARDEN_DATA_DIR"] = str(tmp_path / "other")
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"port {platform.ports['gateway']}" in result.stderr
    assert "LOGWARDEN_GATEWAY_PORT" in result.stderr


def test_missing_redis_server_gives_one_line_error(tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env.update({"PATH": str(tmp_path), "LOGWARDEN_DATA_DIR": str(tmp_path / "data")})
    for variable in ("GATEWAY", "INGEST", "QUERY", "REALTIME", "TCP", "SYSLOG"):
        env[f"LOGWARDEN_{variable}_PORT"] = str(free_port())
    result = subprocess.run(
        [sys.executable, "-m", "shared.cli", "up"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [
        "logwarden: error: redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server) "
        "or set LOGWARDEN_REDIS_URL to an existing Redis"
    ]
