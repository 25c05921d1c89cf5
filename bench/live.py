"""Live-tail benchmark: stream publish -> realtime -> Socket.IO client latency.

Starts a private redis-server and one realtime service (`logwarden serve
realtime`, the production code path under uvicorn), connects N python-socketio
clients (spread over a few processes so the clients are not the bottleneck)
subscribed to everything, publishes paced batches straight to the stream at
each rate for a fixed time, and reports ingest-to-client latency
(client receive time - event timestamp, which is set at publish) p50/p99, plus
how many events arrived and how many the server reported dropped.

Local only, bounded: every loop ends after --duration seconds (plus a drain
grace). Usage::

    .venv/bin/python bench/live.py [--duration 10] [--rates 1000,10000] [--clients 1,50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.bus import STREAM  # noqa: E402
from shared.internal import Principal  # noqa: E402

TICK_S = 0.01  # one stream entry every 10 ms
DRAIN_GRACE_S = 5.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate`` until true or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise SystemExit(f"bench: timed out waiting for {what}")


# --- client processes --------------------------------------------------------------------


async def _run_clients(
    url: str, headers: dict[str, str], service: str, count: int, ready: Any, stop: Any, out: Any
) -> None:
    import socketio

    latencies = array("d")
    received = [0]
    dropped = [0]
    clients = []
    for _ in range(count):
        sio = socketio.AsyncClient(reconnection=False)

        @sio.on("logs", namespace="/live")
        async def on_logs(batch: list[dict[str, Any]]) -> None:
            now_ms = time.time() * 1000
            for event in batch:
                sent_ms = datetime.fromisoformat(event["timestamp"]).timestamp() * 1000
                latencies.append(now_ms - sent_ms)
            received[0] += len(batch)

        @sio.on("dropped", namespace="/live")
        async def on_dropped(data: dict[str, int]) -> None:
            dropped[0] += int(data["count"])

        await sio.connect(url, headers=dict(headers), namespaces=["/live"], transports=["websocket"])
        # Only this case's events: the ring buffer's backfill of earlier cases would skew the figures.
        await sio.call("subscribe", {"services": [service]}, namespace="/live", timeout=10)
        clients.append(sio)
    ready.set()
    # stop is a multiprocessing.Event (set by the parent process): wait for it off the loop.
    await asyncio.to_thread(stop.wait)
    for sio in clients:
        await sio.disconnect()
    out.put((latencies.tobytes(), received[0], dropped[0]))


def client_process(
    url: str, headers: dict[str, str], service: str, count: int, ready: Any, stop: Any, out: Any
) -> None:
    """Entry point of one client process."""
    asyncio.run(_run_clients(url, headers, service, count, ready, stop, out))


# --- publisher ----------------------------------------------------------------------------


async def publish_paced(redis: Redis, service: str, rate: int, duration: float) -> int:
    """Publish ``rate`` events/s in one entry per tick for ``duration`` seconds; returns events sent."""
    per_tick = max(1, round(rate * TICK_S))
    ticks = int(duration / TICK_S)
    start = time.monotonic()
    sent = 0
    for tick in range(ticks):
        now = datetime.now(UTC)
        stamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
        events = [
            {
                "id": f"{tick:013d}{i:013d}",
                "timestamp": stamp,
                "level": "INFO",
                "service": service,
                "server": "server-01",
                "endpoint": "/api/orders",
                "method": "GET",
                "status_code": 200,
                "response_time_ms": 12.5,
                "message": f"GET /api/orders 200 tick {tick} event {i}",
                "source": "http",
                "attrs": {},
            }
            for i in range(per_tick)
        ]
        await redis.xadd(
            STREAM, {"events": orjson.dumps(events), "count": per_tick, "published_ms": int(time.time() * 1000)}
        )
        sent += per_tick
        delay = start + (tick + 1) * TICK_S - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    return sent


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of an already sorted list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_case(
    url: str, redis_url: str, headers: dict[str, str], rate: int, clients: int, duration: float
) -> dict[str, Any]:
    """One (rate, clients) measurement."""
    ctx = mp.get_context("spawn")
    service = f"bench-{rate}-{clients}-{secrets.token_hex(3)}"
    procs_n = min(clients, max(1, (os.cpu_count() or 2)), 10)
    shares = [clients // procs_n + (1 if i < clients % procs_n else 0) for i in range(procs_n)]
    stop = ctx.Event()
    out: Any = ctx.Queue()
    readies = []
    procs = []
    for share in shares:
        ready = ctx.Event()
        proc = ctx.Process(target=client_process, args=(url, headers, service, share, ready, stop, out))
        proc.start()
        readies.append(ready)
        procs.append(proc)
    for ready in readies:
        if not ready.wait(60):
            raise SystemExit("bench: clients did not connect")

    async def publish() -> int:
        redis = Redis.from_url(redis_url)
        try:
            return await publish_paced(redis, service, rate, duration)
        finally:
            await redis.aclose()

    started = time.monotonic()
    sent = asyncio.run(publish())
    elapsed = time.monotonic() - started
    time.sleep(DRAIN_GRACE_S)  # bounded: let the last batches arrive before counting
    stop.set()
    latencies: list[float] = []
    received = dropped = 0
    for _ in procs:
        raw, got, lost = out.get(timeout=60)
        values = array("d")
        values.frombytes(raw)
        latencies.extend(values)
        received += got
        dropped += lost
    for proc in procs:
        proc.join(30)
    latencies.sort()
    return {
        "rate": rate,
        "clients": clients,
        "sent": sent,
        "achieved_rate": sent / elapsed,
        "expected": sent * clients,
        "received": received,
        "dropped": dropped,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
    }


def main() -> int:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--rates", default="1000,10000")
    parser.add_argument("--clients", default="1,50")
    args = parser.parse_args()
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("bench: redis-server is not installed")
    token = secrets.token_hex(32)
    with tempfile.TemporaryDirectory() as tmp:
        redis_port, realtime_port = free_port(), free_port()
        redis_proc = subprocess.Popen(
            [binary, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
        env.update(
            {
                "LOGWARDEN_REDIS_URL": redis_url,
                "LOGWARDEN_INTERNAL_TOKEN": token,
                "LOGWARDEN_REALTIME_PORT": str(realtime_port),
                "LOGWARDEN_DATA_DIR": tmp,
                "LOGWARDEN_LOG_LEVEL": "WARNING",
            }
        )
        realtime = subprocess.Popen(
            [sys.executable, "-m", "shared.cli", "serve", "realtime"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
        )
        url = f"http://127.0.0.1:{realtime_port}"
        try:
            wait_for(lambda: httpx.get(f"{url}/health", timeout=1).status_code == 200, 30, "the realtime service")
            principal = Principal(kind="user", id="bench", name="bench", role="viewer")
            headers = principal.headers(token)
            rows = [
                run_case(url, redis_url, headers, int(rate), int(clients), args.duration)
                for rate in args.rates.split(",")
                for clients in args.clients.split(",")
            ]
        finally:
            realtime.terminate()
            realtime.wait(30)
            redis_proc.terminate()
            redis_proc.wait(10)
    print(f"\nlive tail, {args.duration:g} s per case, {os.cpu_count()} CPUs, realtime + redis on localhost\n")
    print("| events/s (target / achieved) | clients | delivered / expected | dropped | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rate']:,} / {r['achieved_rate']:,.0f} | {r['clients']} | {r['received']:,} / {r['expected']:,} "
            f"| {r['dropped']:,} | {r['p50']:.0f} | {r['p99']:.0f} | {r['max']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
