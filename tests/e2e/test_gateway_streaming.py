"""The gateway streams request bodies: a large upload never sits in its memory."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.e2e.platform import Platform
from tests.helpers import wait_until

pytestmark = pytest.mark.e2e

UPLOAD_BYTES = 256 << 20
CHUNK = 1 << 20
BOUNDARY = "logwarden-streaming-test"


def _gateway(platform: Platform) -> psutil.Process:
    for child in psutil.Process(platform.process.pid).children():
        if child.cmdline()[-2:] == ["serve", "gateway"]:
            return child
    raise AssertionError("no gateway process")


def _multipart_body() -> Iterator[bytes]:
    # A PNG signature makes ingest refuse the file right after storing it, so the
    # test measures the transfer, not parsing.
    yield (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.png"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"\x89PNG\r\n\x1a\n"
    zeros = bytes(CHUNK)
    for _ in range(UPLOAD_BYTES // CHUNK):
        yield zeros
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_large_upload_streams_through_the_gateway(platform: Platform, admin_client: httpx.Client) -> None:
    gateway = _gateway(platform)
    baseline = gateway.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, gateway.memory_info().rss)
            done.wait(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        response = admin_client.post(
            "/api/upload",
            content=_multipart_body(),
            headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            timeout=120,
        )
    finally:
        done.set()
        sampler.join()
    assert response.status_code == 202, response.text
    [stored] = response.json()["files"]
    assert stored["file_size"] >= UPLOAD_BYTES
    growth_mb = (peak - baseline) / (1 << 20)
    assert growth_mb < 64, f"gateway memory grew by {growth_mb:.0f} MB for a {UPLOAD_BYTES >> 20} MB upload"

    def failed_as_not_a_log() -> dict[str, object] | None:
        record = admin_client.get(f"/api/files/{stored['id']}").json()
        return record if record["status"] == "failed" else None

    record = wait_until(failed_as_not_a_log, timeout=30, what="the PNG upload to be refused")
    assert "PNG" in str(record["failure_reason"])
    assert admin_client.delete(f"/api/files/{stored['id']}").status_code in (200, 204)
