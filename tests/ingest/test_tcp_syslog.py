"""TCP JSON lines and syslog (TCP both framings, UDP) with raw asyncio clients against the real app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from services.ingest.inputs.syslog import SyslogFramer
from services.ingest.inputs.tcp import LineFramer
from shared.bus import STREAM, ensure_group
from shared.metrics import REJECTED_EVENTS
from shared.settings import Settings
from tests.helpers import async_wait_until, free_port
from tests.ingest.conftest import make_settings, running_app, stream_events, wait_for_events


@pytest.fixture
def listener_settings(tmp_path: Path, redis_url: str) -> Settings:
    """Settings with the TCP and syslog listeners on free ports."""
    return make_settings(tmp_path, redis_url, tcp_port=free_port(), syslog_port=free_port(), max_line_bytes=256)


@pytest.fixture
async def listening(listener_settings: Settings, redis: Redis) -> AsyncIterator[FastAPI]:
    """The app with its listeners started."""
    del redis
    async with running_app(listener_settings) as app:
        yield app


async def send_tcp(port: int, data: bytes) -> None:
    """Connect, send, close."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_tcp_json_lines_with_an_overlong_line(
    listening: FastAPI, listener_settings: Settings, redis: Redis
) -> None:
    before = REJECTED_EVENTS.labels("tcp", "too_large")._value.get()
    data = b"".join(
        [
            b'{"message": "one", "level": "error", "service": "billing"}\r\n',
            orjson.dumps({"message": "x" * 1000}) + b"\n",
            b'{"message": "three"}\nnot json\n',
            b'{"message": "last, no newline"}',
        ]
    )
    await send_tcp(listener_settings.tcp_port, data)
    events = await wait_for_events(redis, 3)
    assert [e["message"] for e in events] == ["one", "three", "last, no newline"]
    assert events[0]["level"] == "ERROR" and events[0]["service"] == "billing"
    assert {e["source"] for e in events} == {"tcp"}
    assert REJECTED_EVENTS.labels("tcp", "too_large")._value.get() == before + 1


RFC3164 = b"<34>Oct 11 22:14:15 mymachine su[230]: 'su root' failed for lonvick on /dev/pts/8"
RFC5424 = (
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 "
    b'[exampleSDID@32473 iut="3" eventSource="Application"] An application event'
)


def check_syslog(events: list[dict[str, object]]) -> None:
    """The two reference messages of the RFCs, parsed."""
    old, new = events
    assert (old["server"], old["service"], old["level"], old["source"]) == ("mymachine", "su", "CRITICAL", "syslog")
    assert old["message"] == "'su root' failed for lonvick on /dev/pts/8"
    assert (new["server"], new["service"], new["level"]) == ("mymachine.example.com", "evntslog", "INFO")
    assert new["timestamp"] == "2003-10-11T22:14:15.003Z"  # PRI 165 = local4.notice
    assert new["attrs"]["facility"] == "local4"  # type: ignore[index]
    assert new["message"] == "An application event"
    assert new["attrs"]["sd.exampleSDID@32473.iut"] == "3"  # type: ignore[index]


async def test_syslog_tcp_newline_framing(listening: FastAPI, listener_settings: Settings, redis: Redis) -> None:
    await send_tcp(listener_settings.syslog_port, RFC3164 + b"\n" + RFC5424 + b"\n")
    check_syslog(await wait_for_events(redis, 2))


async def test_syslog_tcp_octet_counting(listening: FastAPI, listener_settings: Settings, redis: Redis) -> None:
    framed = b"".join(b"%d %s" % (len(m), m) for m in (RFC3164, RFC5424))
    await send_tcp(listener_settings.syslog_port, framed)
    check_syslog(await wait_for_events(redis, 2))


async def test_syslog_udp(listening: FastAPI, listener_settings: Settings, redis: Redis) -> None:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", listener_settings.syslog_port)
    )
    try:
        transport.sendto(RFC3164)
        transport.sendto(RFC5424)
        events = await wait_for_events(redis, 2)
    finally:
        transport.close()
    check_syslog(sorted(events, key=lambda e: str(e["timestamp"]), reverse=True))


async def test_udp_drops_are_counted_under_backpressure(tmp_path: Path, redis_url: str, redis: Redis) -> None:
    settings = make_settings(tmp_path, redis_url, syslog_port=free_port(), backlog_limit=1)
    await ensure_group(redis, group=settings.consumer_group)
    await redis.xadd(STREAM, {"events": b"[]"})
    await redis.xadd(STREAM, {"events": b"[]"})  # backlog 2 > limit 1, nobody consumes
    before = REJECTED_EVENTS.labels("syslog_udp", "backpressure")._value.get()
    async with running_app(settings) as app:
        await app.state.ingest.gate.backlog()  # learn the backlog (UDP uses the cached value)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, remote_addr=("127.0.0.1", settings.syslog_port)
        )
        try:
            transport.sendto(RFC3164)

            async def dropped() -> bool:
                return bool(REJECTED_EVENTS.labels("syslog_udp", "backpressure")._value.get() == before + 1)

            await async_wait_until(dropped, what="the datagram to be counted as dropped")
        finally:
            transport.close()
    assert await redis.xlen(STREAM) == 2


async def test_tcp_backpressure_stalls_the_client_and_loses_nothing(
    tmp_path: Path, redis_url: str, redis: Redis
) -> None:
    settings = make_settings(tmp_path, redis_url, tcp_port=free_port(), backlog_limit=1, publish_batch_size=1000)
    group = settings.consumer_group
    await ensure_group(redis, group=group)
    line = orjson.dumps({"message": "m" * 200}) + b"\n"
    total = 40_000  # ~8.5 MB: far more than the socket buffers hold
    async with running_app(settings) as app:
        app.state.ingest.gate._ttl = 0.0  # always ask Redis: the test reads exact states
        app.state.ingest.gate.poll_interval = 0.005  # resume quickly once drained (keeps the test short)
        _, writer = await asyncio.open_connection("127.0.0.1", settings.tcp_port)
        sent = 0

        async def write_all() -> None:
            nonlocal sent
            for start in range(0, total, 500):
                writer.write(line * 500)
                await writer.drain()
                sent = start + 500

        writing = asyncio.create_task(write_all())
        # The server published past the limit once, then stopped reading: the writer stalls.
        await async_wait_until(lambda: _stalled(redis), what="the server to stop publishing")
        plateau = await redis.xlen(STREAM)
        await asyncio.sleep(0.5)  # a stall is the absence of progress: give it time to show
        assert not writing.done()
        assert await redis.xlen(STREAM) == plateau
        assert sent < total

        # Act as the indexer: consume and acknowledge until every line went through the stream.
        drained = 0

        async def drain() -> bool:
            nonlocal drained
            response = await redis.xreadgroup(group, "t", {STREAM: ">"}, count=100, block=20)
            for _, entries in response or []:
                await redis.xack(STREAM, group, *[e[0] for e in entries])
                drained += sum(int(fields[b"count"]) for _, fields in entries)
            if writing.done() and not writer.is_closing():
                writer.close()  # the client is done: the server then reads to EOF
            return drained == total

        await async_wait_until(drain, timeout=60, interval=0.005, what="every line to arrive")
        await writing
        await writer.wait_closed()
    events = await stream_events(redis)
    assert len(events) == total and {e["source"] for e in events} == {"tcp"}


async def _stalled(redis: Redis) -> bool:
    first = await redis.xlen(STREAM)
    await asyncio.sleep(0.2)
    return bool(first) and await redis.xlen(STREAM) == first


def test_line_framer_bounds_lines() -> None:
    framer = LineFramer(10)
    assert framer.feed(b"short\nthis one is far too long") == [b"short", None]
    assert framer.feed(b" still going\nok\r\n") == [b"ok"]
    assert framer.feed(b"tail") == [] and framer.finish() == [b"tail"]


def test_syslog_framer_octets_split_across_reads_and_oversized_frames() -> None:
    framer = SyslogFramer(20)
    assert framer.feed(b"5 hel") == []
    assert framer.feed(b"lo3 abc30 ") == [b"hello", b"abc", None]
    assert framer.feed(b"x" * 30 + b"2 ok") == [b"ok"]
    lines = SyslogFramer(20)
    assert lines.feed(b"<13>a\n<13>b\n") == [b"<13>a", b"<13>b"]
