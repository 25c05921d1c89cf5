"""Two realtime replicas, each behind its own gateway, both deliver every event to their own clients."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from shared.bus import publish
from shared.models import LogEvent
from tests.e2e.platform import Platform
from tests.helpers import free_port, wait_until
from tests.realtime.conftest import LiveTestClient

pytestmark = pytest.mark.e2e


def _serve(platform: Platform, service: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", service], env=env, stdout=out, stderr=subprocess.STDOUT
        )


@pytest.fixture
def second_replica(live_platform: Platform, tmp_path: Path) -> Iterator[dict[str, str]]:
    """A second realtime process and a second gateway pointed at it (same data dir, Redis and token)."""
    token = (live_platform.data_dir / "secrets.json").read_text()
    import json

    env = dict(live_platform.env)
    env["LOGWARDEN_INTERNAL_TOKEN"] = json.loads(token)["internal_token"]
    env["LOGWARDEN_DATA_DIR"] = str(live_platform.data_dir.resolve())
    realtime_port, gateway_port = free_port(), free_port()
    env["LOGWARDEN_REALTIME_PORT"] = str(realtime_port)
    env["LOGWARDEN_GATEWAY_PORT"] = str(gateway_port)
    procs = [
        _serve(live_platform, "realtime", env, tmp_path / "realtime2.log"),
        _serve(live_platform, "gateway", env, tmp_path / "gateway2.log"),
    ]
    urls = {"realtime": f"http://127.0.0.1:{realtime_port}", "gateway": f"http://127.0.0.1:{gateway_port}"}
    try:
        for name, url in urls.items():
            wait_until(
                lambda u=url: httpx.get(f"{u}/health", timeout=2).status_code == 200,  # type: ignore[misc]
                timeout=30,
                what=f"the second {name}",
            )
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _live_clients_metric(base: str) -> float:
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        if line.startswith("logwarden_live_clients "):
            return float(line.split()[1])
    raise AssertionError("no logwarden_live_clients gauge")


async def test_every_replica_delivers_to_its_own_clients(
    live_platform: Platform,
    second_replica: dict[str, str],
    live_clients: Callable[..., LiveTestClient],
    admin_session: tuple[str, str],
    stream: Redis,
) -> None:
    assert _live_clients_metric(second_replica["realtime"]) == 0
    one = live_clients(live_platform.url, {"Cookie": admin_session[0], "Origin": live_platform.url})
    two = live_clients(second_replica["gateway"], {"Cookie": admin_session[0]})
    await one.connect()
    await two.connect()
    # The second client is really served by the second replica.
    assert _live_clients_metric(second_replica["realtime"]) == 1
    for client in (one, two):
        assert (await client.subscribe(services=["replicated"]))["ok"]
    event = LogEvent(service="replicated", message="seen by every replica")
    await publish(stream, [event])
    for client in (one, two):
        await client.wait_for(lambda c=client: c.has_message(event.message), timeout=2.0)  # type: ignore[misc]
        assert [e["id"] for e in client.logs if e["service"] == "replicated"][-1] == event.id
