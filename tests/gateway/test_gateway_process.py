"""The gateway as a real uvicorn process: bootstrap password shown once, a session over real HTTP."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from tests.helpers import free_port, repo_root, wait_until

RUNNER = """
import uvicorn
from services.gateway.app import create_app
from shared.settings import Settings
settings = Settings()
uvicorn.run(create_app(settings), host="127.0.0.1", port=settings.gateway_port, log_level="warning")
"""


@pytest.fixture
def gateway_process(tmp_path: Path, redis_url: str, redis: Redis) -> Iterator[tuple[str, Path]]:
    """A gateway process with no admin credentials configured; yields (url, log file).

    Depends on ``redis`` so the shared Redis (login rate counters) is flushed first.
    """
    del redis
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env.update(
        {
            "LOGWARDEN_DATA_DIR": str(tmp_path / "data"),
            "LOGWARDEN_REDIS_URL": redis_url,
            "LOGWARDEN_INTERNAL_TOKEN": secrets.token_hex(32),
            "LOGWARDEN_GATEWAY_PORT": str(port),
            "LOGWARDEN_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "LOGWARDEN_INGEST_URL": f"http://127.0.0.1:{free_port()}",
            "LOGWARDEN_QUERY_URL": f"http://127.0.0.1:{free_port()}",
            "PYTHONPATH": str(repo_root()),
        }
    )
    log_path = tmp_path / "gateway.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", RUNNER], cwd=repo_root(), env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: httpx.get(f"{url}/health/live", timeout=1).status_code == 200,
            timeout=30,
            what="the gateway process",
        )
        yield url, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_bootstrap_and_session_over_real_http(gateway_process: tuple[str, Path]) -> None:
    """The generated admin password is logged once; it logs in; cookie + CSRF work end to end."""
    url, log_path = gateway_process
    passwords = re.findall(r"generated password (\S+)", log_path.read_text())
    assert len(passwords) == 1
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/api/auth/me")).status_code == 401
        assert (await client.get("/api/search")).status_code == 401
        response = await client.post("/api/auth/login", json={"username": "admin", "password": passwords[0]})
        assert response.status_code == 200
        csrf = response.json()["csrf_token"]
        assert (await client.get("/api/auth/me")).json()["name"] == "admin"
        assert (await client.get("/api/search")).status_code == 502  # authenticated; no query service
        refused = await client.post("/api/keys", json={"name": "k", "scopes": ["read"]})
        assert refused.status_code == 403
        created = await client.post(
            "/api/keys", json={"name": "k", "scopes": ["read"]}, headers={"X-CSRF-Token": csrf, "Origin": url}
        )
        assert created.status_code == 201
        assert (await client.post("/api/auth/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
        assert (await client.get("/api/auth/me")).status_code == 401
    async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": created.json()["key"]}) as shipper:
        assert (await shipper.get("/api/auth/me")).json()["kind"] == "key"
