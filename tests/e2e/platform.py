"""Run the real platform (`logwarden up`) on free ports in a temp data dir."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers import free_port, wait_until

SERVICES = ("gateway", "ingest", "query", "realtime")


@dataclass
class Platform:
    """A running platform and how to reach it."""

    process: subprocess.Popen[bytes]
    data_dir: Path
    ports: dict[str, int]
    env: dict[str, str]
    admin_username: str
    admin_password: str
    log_path: Path
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """The gateway's base URL."""
        return f"http://127.0.0.1:{self.ports['gateway']}"

    def service_url(self, name: str) -> str:
        """An internal service's base URL."""
        return f"http://127.0.0.1:{self.ports[name]}"

    def logs(self) -> str:
        """Everything the platform printed so far."""
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict[str, object]:
        """The gateway's /api/health document."""
        return httpx.get(f"{self.url}/api/health", timeout=5).json()


@contextmanager
def run_platform(tmp: Path, *, wait_ready: bool = True, **overrides: str) -> Iterator[Platform]:
    """Start `logwarden up` (by default until it says it is ready) and stop it (SIGTERM) afterwards."""
    ports = {name: free_port() for name in SERVICES}
    ports["tcp"] = free_port()
    ports["syslog"] = free_port()
    data_dir = tmp / "data"
    admin_password = secrets.token_urlsafe(16)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env.update(
        {
            "LOGWARDEN_DATA_DIR": str(data_dir),
            "LOGWARDEN_GATEWAY_PORT": str(ports["gateway"]),
            "LOGWARDEN_INGEST_PORT": str(ports["ingest"]),
            "LOGWARDEN_QUERY_PORT": str(ports["query"]),
            "LOGWARDEN_REALTIME_PORT": str(ports["realtime"]),
            "LOGWARDEN_TCP_PORT": str(ports["tcp"]),
            "LOGWARDEN_SYSLOG_PORT": str(ports["syslog"]),
            "LOGWARDEN_PUBLIC_URL": f"http://127.0.0.1:{ports['gateway']}",
            "LOGWARDEN_ADMIN_USERNAME": "admin",
            "LOGWARDEN_ADMIN_PASSWORD": admin_password,
            "LOGWARDEN_CLAIM_IDLE_MS": "1000",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    log_path = tmp / "platform.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "up"], env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        platform = Platform(proc, data_dir, ports, env, "admin", admin_password, log_path)
        try:
            if wait_ready:
                wait_ready_platform(platform)
            yield platform
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_ready_platform(platform: Platform, *, timeout: float = 60) -> None:
    """Wait until `up` said "ready" (from then on it supervises) and the platform is healthy."""

    def ready() -> bool:
        assert platform.process.poll() is None, f"logwarden up exited early:\n{platform.logs()[-5000:]}"
        return "logwarden: ready:" in platform.logs() and platform.health().get("status") == "healthy"

    wait_until(ready, timeout=timeout, interval=0.2, what="the platform to become healthy")
