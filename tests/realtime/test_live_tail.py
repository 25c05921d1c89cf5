"""The live tail end to end: `logwarden up`, Socket.IO through the gateway, events from the stream."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import socketio
from redis.asyncio import Redis
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from shared.bus import publish
from shared.models import LogEvent
from tests.e2e.platform import Platform
from tests.realtime.conftest import LiveTestClient, create_key

pytestmark = pytest.mark.e2e

MakeClient = Callable[..., LiveTestClient]


def unique(prefix: str = "svc") -> str:
    """A service name no other test uses (the ring buffer is shared by the session)."""
    return f"{prefix}-{secrets.token_hex(4)}"


async def http(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One HTTP request without blocking the event loop the Socket.IO clients run on."""
    async with httpx.AsyncClient(timeout=10) as client:
        return await client.request(method, url, **kwargs)


async def test_event_posted_to_api_logs_reaches_subscriber_within_a_second_with_all_fields(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], admin_session: tuple[str, str]
) -> None:
    service = unique()
    client = live_clients(live_platform.url, cookie_headers)
    await client.connect()
    ack = await client.subscribe(services=[service])
    assert ack["ok"] is True and ack["backfill"] == 0

    sent = {
        "timestamp": "2026-03-04T05:06:07.089Z",
        "level": "ERROR",
        "service": service,
        "server": "server-03",
        "endpoint": "/api/orders",
        "method": "POST",
        "status_code": 503,
        "response_time_ms": 1234.5,
        "user_id": "user-7",
        "tenant_id": "acme",
        "client_ip": "10.1.2.3",
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "message": f"payment provider timeout {service}",
        "attrs": {"db.statement": "SELECT 1", "retry": "3"},
    }
    headers = {**cookie_headers, "X-CSRF-Token": admin_session[1]}
    started = time.time()
    response = await http("POST", f"{live_platform.url}/api/logs", json=sent, headers=headers)
    assert response.status_code == 202, response.text
    await client.wait_for(lambda: client.has_message(sent["message"]), timeout=1.0, what="the posted event")
    event = next(e for e in client.logs if e["message"] == sent["message"])
    assert client.received_at[event["id"]] - started < 1.0
    for name, value in sent.items():
        assert event[name] == value, name
    assert event["id"] and event["source"] == "http"


async def test_published_event_arrives_within_a_second_with_every_field(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], stream: Redis
) -> None:
    service = unique()
    client = live_clients(live_platform.url, cookie_headers)
    await client.connect()
    assert (await client.subscribe(services=[service]))["ok"] is True
    event = LogEvent(
        level="CRITICAL",
        service=service,
        server="server-01",
        endpoint="/api/billing",
        method="PUT",
        status_code=500,
        response_time_ms=12.25,
        user_id="u1",
        tenant_id="t1",
        client_ip="192.0.2.1",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        message="disk full",
        source="tcp",
        attrs={"k.a": "v"},
    )
    started = time.time()
    await publish(stream, [event])
    await client.wait_for(lambda: len(client.logs) == 1, timeout=1.0, what="the published event")
    assert client.logs == [event.to_dict()]
    assert client.received_at[event.id] - started < 1.0


async def test_filters_by_level_service_and_query(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], stream: Redis
) -> None:
    service, other = unique(), unique()
    by_level = live_clients(live_platform.url, cookie_headers)
    by_service = live_clients(live_platform.url, cookie_headers)
    by_query = live_clients(live_platform.url, cookie_headers)
    for client in (by_level, by_service, by_query):
        await client.connect()
    assert (await by_level.subscribe(levels=["error", "CRITICAL"], services=[service, other]))["ok"]
    assert (await by_service.subscribe(services=[other]))["ok"]
    query = f"status_code:>=500 AND timeout AND (service:{service} OR service:{other})"
    assert (await by_query.subscribe(q=query))["ok"]

    events = [
        LogEvent(level="INFO", service=service, message="all good", status_code=200),
        LogEvent(level="ERROR", service=service, message="upstream timeout", status_code=504),
        LogEvent(level="WARNING", service=other, message="slow timeout", status_code=502),
        LogEvent(level="CRITICAL", service=other, message="crashed", status_code=500),
        LogEvent(level="ERROR", service=unique(), message="timeout elsewhere", status_code=500),
    ]
    await publish(stream, events[:3])
    await publish(stream, events[3:])
    sentinel = LogEvent(level="ERROR", service=other, message="final timeout", status_code=599)
    await publish(stream, [sentinel])
    for client in (by_level, by_service, by_query):
        await client.wait_for(lambda c=client: c.has_message("final timeout"), what="the sentinel")  # type: ignore[misc]
    assert by_level.messages() == ["upstream timeout", "crashed", "final timeout"]
    assert by_service.messages() == ["slow timeout", "crashed", "final timeout"]
    assert by_query.messages() == ["upstream timeout", "slow timeout", "final timeout"]


async def test_resubscribe_replaces_the_filter_and_backfills(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], stream: Redis
) -> None:
    service = unique()
    client = live_clients(live_platform.url, cookie_headers)
    await client.connect()
    assert (await client.subscribe(services=[service], levels=["ERROR"]))["ok"]
    await publish(stream, [LogEvent(level="INFO", service=service, message="info 1")])
    await publish(stream, [LogEvent(level="ERROR", service=service, message="error 1")])
    await client.wait_for(lambda: client.has_message("error 1"))
    assert client.messages() == ["error 1"]

    ack = await client.subscribe(services=[service], levels=["INFO"])
    assert ack == {"ok": True, "backfill": 1, "resumed": False}
    await client.wait_for(lambda: client.has_message("info 1"), what="the backfill")
    await publish(stream, [LogEvent(level="ERROR", service=service, message="error 2")])
    await publish(stream, [LogEvent(level="INFO", service=service, message="info 2")])
    await client.wait_for(lambda: client.has_message("info 2"))
    assert client.messages() == ["error 1", "info 1", "info 2"]


async def test_bad_query_reports_position_and_keeps_the_old_filter(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], stream: Redis
) -> None:
    service = unique()
    client = live_clients(live_platform.url, cookie_headers)
    await client.connect()
    assert (await client.subscribe(services=[service]))["ok"]
    ack = await client.subscribe(services=[service], q="level:ERROR AND (message:x")
    assert ack["ok"] is False and isinstance(ack["position"], int)
    await client.wait_for(lambda: bool(client.subscribe_errors), what="subscribe_error")
    assert client.subscribe_errors[0]["position"] == ack["position"]
    assert client.subscribe_errors[0]["message"]
    invalid = await client.subscribe(levels=["LOUD"])
    assert invalid["ok"] is False and "levels" in invalid["message"]

    await publish(stream, [LogEvent(level="DEBUG", service=service, message="still tailing")])
    await client.wait_for(lambda: client.has_message("still tailing"), what="the old filter to still apply")


async def test_anonymous_connection_is_refused(live_platform: Platform, live_clients: MakeClient) -> None:
    # WebSocket: python-socketio's polling client races its own cleanup when reading an error body.
    client = live_clients(live_platform.url, {"Origin": live_platform.url})
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    assert client.connect_errors, "the client should see connect_error"
    assert not client.sio.connected
    poll = await http("GET", f"{live_platform.url}/socket.io/?EIO=4&transport=polling")
    assert poll.status_code == 401
    assert poll.json()["error"]["code"] == "unauthorized"
    with pytest.raises(InvalidStatus) as refused:
        async with ws_connect(f"ws://127.0.0.1:{live_platform.ports['gateway']}/socket.io/?EIO=4&transport=websocket"):
            pass
    assert refused.value.response.status_code == 403  # closed (1008) before the handshake completed


async def test_only_the_live_namespace_is_served(
    live_platform: Platform, live_clients: MakeClient, admin_session: tuple[str, str]
) -> None:
    key = create_key(live_platform, admin_session, scopes=["read"])
    allowed = live_clients(live_platform.url, {"X-API-Key": key})
    await allowed.connect()  # the same credentials are good for /live
    assert allowed.sio.connected
    refused: list[object] = []
    sio = socketio.AsyncClient(reconnection=False)
    sio.on("connect_error", refused.append, namespace="/")
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(live_platform.url, headers={"X-API-Key": key}, namespaces=["/"], transports=["websocket"])
    assert refused and not sio.connected
    await sio.disconnect()


async def test_a_bad_api_key_or_a_key_without_read_is_refused(
    live_platform: Platform, live_clients: MakeClient, admin_session: tuple[str, str]
) -> None:
    ingest_only = create_key(live_platform, admin_session, scopes=["ingest"])
    for key in (ingest_only, "lw_not-a-real-key"):
        client = live_clients(live_platform.url, {"X-API-Key": key})
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect()
        assert client.connect_errors
    poll = await http(
        "GET", f"{live_platform.url}/socket.io/?EIO=4&transport=polling", headers={"X-API-Key": ingest_only}
    )
    assert poll.status_code == 403


async def test_foreign_origin_is_refused(
    live_platform: Platform, live_clients: MakeClient, admin_session: tuple[str, str]
) -> None:
    foreign = {"Cookie": admin_session[0], "Origin": "http://evil.example"}
    client = live_clients(live_platform.url, foreign)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect()
    assert client.connect_errors
    poll = await http("GET", f"{live_platform.url}/socket.io/?EIO=4&transport=polling", headers=foreign)
    assert poll.status_code == 403
    with pytest.raises(InvalidStatus):
        async with ws_connect(
            f"ws://127.0.0.1:{live_platform.ports['gateway']}/socket.io/?EIO=4&transport=websocket",
            additional_headers={"Cookie": admin_session[0]},
            origin="http://evil.example",  # type: ignore[arg-type]
        ):
            pass
    # The same key from a page on an allowed origin works.
    same_origin = live_clients(live_platform.url, {"Cookie": admin_session[0], "Origin": live_platform.url})
    await same_origin.connect()
    assert same_origin.sio.connected


async def test_tenant_key_only_receives_its_tenants_events(
    live_platform: Platform, live_clients: MakeClient, admin_session: tuple[str, str], stream: Redis
) -> None:
    service = unique()
    tenant = unique("tenant")
    await publish(stream, [LogEvent(service=service, tenant_id="other", message="old other")])
    await publish(stream, [LogEvent(service=service, tenant_id=tenant, message="old mine")])
    key = create_key(live_platform, admin_session, scopes=["read"], tenant_id=tenant)
    tenant_client = live_clients(live_platform.url, {"X-API-Key": key})
    unrestricted = create_key(live_platform, admin_session, scopes=["read"])
    admin_client = live_clients(live_platform.url, {"Authorization": f"Bearer {unrestricted}"})
    await tenant_client.connect()
    await admin_client.connect()
    assert (await tenant_client.subscribe(services=[service]))["backfill"] == 1
    assert (await admin_client.subscribe(services=[service]))["backfill"] == 2
    # Even asking for another tenant explicitly yields nothing of it.
    await publish(
        stream,
        [
            LogEvent(service=service, tenant_id="other", message="new other"),
            LogEvent(service=service, message="no tenant"),
            LogEvent(service=service, tenant_id=tenant, message="new mine"),
        ],
    )
    await tenant_client.wait_for(lambda: tenant_client.has_message("new mine"))
    await admin_client.wait_for(lambda: admin_client.has_message("new mine"))
    assert tenant_client.messages() == ["old mine", "new mine"]
    assert admin_client.messages() == ["old other", "old mine", "new other", "no tenant", "new mine"]

    ack = await tenant_client.subscribe(q="tenant_id:other")
    assert ack["ok"] is True and ack["backfill"] == 0


async def test_long_polling_only_works_when_upgrades_are_blocked(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], stream: Redis
) -> None:
    service = unique()
    client = live_clients(live_platform.url, cookie_headers, transports=["polling"])
    await client.connect()
    assert client.sio.transport() == "polling"
    assert (await client.subscribe(services=[service]))["ok"]
    started = time.time()
    await publish(stream, [LogEvent(service=service, message="over polling")])
    await client.wait_for(lambda: client.has_message("over polling"), timeout=2.0)
    assert time.time() - started < 1.5


async def test_direct_connections_to_realtime_need_the_gateway(live_platform: Platform) -> None:
    base = live_platform.service_url("realtime")
    assert (await http("GET", f"{base}/socket.io/?EIO=4&transport=polling")).status_code == 401
    # Health and metrics stay open, and the reader reports in.
    health = (await http("GET", f"{base}/health")).json()
    assert health["status"] == "healthy"
    assert health["checks"]["reader"]["status"] == "healthy"
    assert "logwarden_live_clients" in (await http("GET", f"{base}/metrics")).text


async def test_reconnect_with_last_id_has_no_gap_and_no_duplicate(
    live_platform: Platform, live_clients: MakeClient, cookie_headers: dict[str, str], stream: Redis
) -> None:
    service = unique()
    first = live_clients(live_platform.url, cookie_headers)
    await first.connect()
    assert (await first.subscribe(services=[service]))["ok"]
    # ULIDs of later batches may sort before earlier ones: order must come from the stream.
    early = [LogEvent(service=service, message=f"m{i}") for i in range(5)]
    await publish(stream, early[:3])
    await publish(stream, early[3:])
    await first.wait_for(lambda: len(first.logs) == 5)
    last_id = first.logs[-1]["id"]
    await first.close()

    missed: list[LogEvent] = []
    for batch in range(4):
        chunk = [LogEvent(service=service, message=f"m{5 + batch * 3 + i}") for i in range(3)]
        chunk.reverse()  # ids inside an entry out of order too
        missed.extend(chunk)
        await publish(stream, chunk)
        await publish(stream, [LogEvent(service=unique(), message="noise")])

    second = live_clients(live_platform.url, cookie_headers)
    await second.connect()
    ack = await second.subscribe(services=[service], last_id=last_id)
    assert ack == {"ok": True, "backfill": len(missed), "resumed": True}
    await second.wait_for(lambda: len(second.logs) >= len(missed))
    after = LogEvent(service=service, message="after reconnect")
    await publish(stream, [after])
    await second.wait_for(lambda: second.has_message("after reconnect"))
    assert [e["id"] for e in second.logs] == [e.id for e in [*missed, after]]

    third = live_clients(live_platform.url, cookie_headers)
    await third.connect()
    unknown = await third.subscribe(services=[service], last_id="01ZZZZZZZZZZZZZZZZZZZZZZZZ")
    assert unknown["resumed"] is False and unknown["backfill"] == len(early) + len(missed) + 1


async def _raw_live_socket(platform: Platform, cookie: str, service: str) -> Any:
    """A hand-made Engine.IO WebSocket client through the gateway that can stop reading at will."""
    import socket

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window: backpressure builds fast
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", platform.ports["gateway"]))
    ws = await ws_connect(
        f"ws://127.0.0.1:{platform.ports['gateway']}/socket.io/?EIO=4&transport=websocket",
        sock=sock,
        additional_headers={"Cookie": cookie},
        origin=platform.url,  # type: ignore[arg-type]
        max_queue=1,
        compression=None,
        ping_interval=None,
        max_size=None,
    )
    opened = await asyncio.wait_for(ws.recv(), 5)
    assert str(opened).startswith("0{")
    await ws.send("40/live,")
    assert str(await asyncio.wait_for(ws.recv(), 5)).startswith("40/live,")
    await ws.send(f'42/live,1["subscribe",{{"services":["{service}"]}}]')  # ack id 1
    assert str(await asyncio.wait_for(ws.recv(), 5)).startswith("43/live,1[")  # the ack
    return ws


async def test_a_stalled_client_does_not_delay_others_and_learns_what_it_missed(
    live_platform: Platform,
    live_clients: MakeClient,
    cookie_headers: dict[str, str],
    admin_session: tuple[str, str],
    stream: Redis,
) -> None:
    service = unique()
    stalled = await _raw_live_socket(live_platform, admin_session[0], service)
    healthy = live_clients(live_platform.url, cookie_headers)
    await healthy.connect()
    assert (await healthy.subscribe(services=[service], q="probe"))["ok"]
    realtime = live_platform.service_url("realtime")

    async def dropping_clients() -> int:
        health = (await http("GET", f"{realtime}/health")).json()
        return int(health["checks"]["reader"]["details"]["dropping_clients"])

    filler = "x" * 16_000
    latencies: list[float] = []
    deadline = time.monotonic() + 30
    rounds = 0
    while await dropping_clients() == 0:  # publish until the stalled client's own queue overflows
        assert time.monotonic() < deadline, "the stalled client never fell behind"
        rounds += 1
        await publish(stream, [LogEvent(service=service, message=f"filler {rounds} {filler}") for _ in range(100)])
        probe = LogEvent(service=service, message=f"probe {rounds}")
        sent = time.time()
        await publish(stream, [probe])
        await healthy.wait_for(lambda p=probe: p.id in healthy.received_at, timeout=1.0)  # type: ignore[misc]
        latencies.append(healthy.received_at[probe.id] - sent)
    for extra in range(3):  # and keep going while it is stalled
        probe = LogEvent(service=service, message=f"probe extra {extra}")
        sent = time.time()
        await publish(stream, [LogEvent(service=service, message=f"filler {filler}") for _ in range(50)] + [probe])
        await healthy.wait_for(lambda p=probe: p.id in healthy.received_at, timeout=1.0)  # type: ignore[misc]
        latencies.append(healthy.received_at[probe.id] - sent)
    assert max(latencies) < 1.0, latencies

    # The stalled client reads again: it is told how many events it lost, then gets the newest.
    dropped: int | None = None
    read_deadline = time.monotonic() + 20
    async with stalled:
        while dropped is None:
            assert time.monotonic() < read_deadline, "no 'dropped' notice"
            frame = str(await asyncio.wait_for(stalled.recv(), 10))
            if frame == "2":
                await stalled.send("3")  # Engine.IO heartbeat
            elif frame.startswith('42/live,["dropped"'):
                import json

                dropped = json.loads(frame[len("42/live,") :])[1]["count"]
        assert dropped is not None and dropped > 0
        frame = str(await asyncio.wait_for(stalled.recv(), 10))
        assert frame.startswith('42/live,["logs"'), frame[:50]
