"""Syslog (RFC 3164 and RFC 5424) over TCP and UDP, port 5514.

TCP framing is detected per connection from its first byte (RFC 6587): a digit
means octet counting (``LEN SP MSG``), anything else newline framing. UDP
carries one message per datagram. UDP cannot be slowed down, so while the
indexer's backlog is over the limit datagrams are dropped and counted
(``logwarden_rejected_events_total{input="syslog_udp",reason="backpressure"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import UTC, datetime
from typing import Any, Final, cast

from services.ingest.inputs.tcp import READ_SIZE, LineFramer, Message, Parsed, StreamInput
from services.ingest.parsing import ParseLimits, RecordError, normalise_counted
from services.ingest.parsing.formats import match_line
from services.ingest.publish import BacklogGate, Publisher, PublishError
from services.ingest.service import count_rejections
from shared.metrics import BACKPRESSURE, INGESTED_BYTES, REJECTED_EVENTS
from shared.models import LogEvent

log = logging.getLogger(__name__)

_RFC5424_HEAD: Final = re.compile(rb"^<\d{1,3}>\d{1,2} ")
_PRI: Final = re.compile(r"^<(\d{1,3})>")
_MAX_LENGTH_DIGITS: Final = 10
_UDP_FLUSH_SECONDS: Final = 0.05


class SyslogFramer:
    """RFC 6587 framing, chosen by the first byte of the connection."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._mode: str | None = None
        self._lines = LineFramer(max_bytes)
        self._buffer = bytearray()
        self._skip = 0

    def feed(self, data: bytes) -> list[Message]:
        """Messages completed by ``data``."""
        if self._mode is None:
            stripped = data.lstrip()
            if not stripped:
                return []
            self._mode = "octets" if stripped[:1].isdigit() else "lines"
        if self._mode == "lines":
            return self._lines.feed(data)
        self._buffer += data
        return self._octets()

    def _octets(self) -> list[Message]:
        out: list[Message] = []
        buffer = self._buffer
        while True:
            if self._skip:
                dropped = min(self._skip, len(buffer))
                del buffer[:dropped]
                self._skip -= dropped
                if self._skip:
                    return out
            # Some senders put a newline after each frame; tolerate whitespace between frames.
            while buffer[:1] in (b"\n", b"\r", b" ", b"\x00"):
                del buffer[:1]
            if not buffer:
                return out
            space = buffer.find(b" ", 0, _MAX_LENGTH_DIGITS + 1)
            if space < 0:
                if len(buffer) > _MAX_LENGTH_DIGITS or not bytes(buffer).isdigit():
                    # Not octet counting after all: treat the rest of the stream as lines.
                    self._mode = "lines"
                    rest = bytes(buffer)
                    buffer.clear()
                    return out + self._lines.feed(rest)
                return out
            digits = bytes(buffer[:space])
            if not digits.isdigit():
                self._mode = "lines"
                rest = bytes(buffer)
                buffer.clear()
                return out + self._lines.feed(rest)
            length = int(digits)
            if length > self._max:
                del buffer[: space + 1]
                self._skip = length
                out.append(None)
                continue
            if len(buffer) < space + 1 + length:
                return out
            out.append(bytes(buffer[space + 1 : space + 1 + length]))
            del buffer[: space + 1 + length]

    def finish(self) -> list[Message]:
        """What is left when the peer closes."""
        if self._mode == "lines":
            return self._lines.finish()
        return []


def syslog_record(text: str) -> dict[str, Any]:
    """The record of one syslog message: RFC 5424, else RFC 3164, else the text with its PRI."""
    record: dict[str, Any] | None = None
    if _RFC5424_HEAD.match(text.encode("utf-8", "ignore")[:8]):
        record = match_line("syslog_5424", text)
    if record is None:
        record = match_line("syslog_3164", text)
    if record is None:
        record = {"message": text}
        pri = _PRI.match(text)
        if pri is not None and int(pri.group(1)) <= 191:
            value = int(pri.group(1))
            record["message"] = text[pri.end() :].strip()
            record["level"] = value % 8
            record["facility_code"] = str(value // 8)
    return record


def parse_syslog(messages: list[Message], *, limits: ParseLimits) -> Parsed:
    """Events and rejection reasons of syslog messages."""
    events: list[LogEvent] = []
    rejected: list[str] = []
    now = datetime.now(UTC)
    for raw in messages:
        if raw is None:
            rejected.append(f"line longer than {limits.max_line_bytes} bytes")
            continue
        text = raw.decode("utf-8", "replace").strip("\r\n\x00 ")
        if not text:
            continue
        try:
            event, _ = normalise_counted(syslog_record(text), source="syslog", limits=limits, now=now)
        except RecordError as exc:
            rejected.append(exc.reason)
            continue
        events.append(event)
    return events, rejected


def syslog_tcp_input(*, publisher: Publisher, gate: BacklogGate, limits: ParseLimits) -> StreamInput:
    """Syslog over TCP (source ``syslog``)."""
    return StreamInput(
        name="syslog",
        fmt="syslog",
        framer=lambda: SyslogFramer(limits.max_line_bytes),
        parse=lambda messages: parse_syslog(messages, limits=limits),
        publisher=publisher,
        gate=gate,
    )


class SyslogUdp(asyncio.DatagramProtocol):
    """Syslog over UDP: datagrams are buffered briefly and published in batches."""

    name: Final = "syslog_udp"

    def __init__(self, *, publisher: Publisher, gate: BacklogGate, limits: ParseLimits) -> None:
        self._publisher = publisher
        self._gate = gate
        self._limits = limits
        self._pending: list[Message] = []
        self._flush_task: asyncio.Task[None] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        # Bounded: if Redis stalls, datagrams beyond this are dropped and counted.
        self._max_pending = publisher.batch_size * 20

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport to close it later."""
        self._transport = cast(asyncio.DatagramTransport, transport)

    def _drop(self, n: int = 1) -> None:
        REJECTED_EVENTS.labels(self.name, "backpressure").inc(n)
        BACKPRESSURE.labels(self.name).inc(n)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        """One datagram, one message."""
        INGESTED_BYTES.labels(self.name).inc(len(data))
        if self._gate.over_limit_nowait() or len(self._pending) >= self._max_pending:
            self._drop()
            return
        self._pending.append(data if len(data) <= self._limits.max_line_bytes else None)
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(_UDP_FLUSH_SECONDS)  # gather a burst of datagrams into one entry
        while self._pending:
            messages, self._pending = self._pending, []
            events, rejected = await asyncio.to_thread(parse_syslog, messages, limits=self._limits)
            if rejected:
                count_rejections(self.name, rejected)
            try:
                await self._publisher.publish(events, input_name=self.name, fmt="syslog")
            except PublishError as exc:
                log.warning("syslog UDP: %s; %d events dropped", exc, len(events))
                self._drop(len(events))

    async def close(self) -> None:
        """Publish what is buffered, then close the socket."""
        if self._flush_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._flush_task, 5)
        if self._transport is not None:
            self._transport.close()


async def start_syslog_udp(
    host: str, port: int, *, publisher: Publisher, gate: BacklogGate, limits: ParseLimits
) -> tuple[SyslogUdp, int]:
    """Listen for syslog datagrams; returns the protocol and the bound port."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: SyslogUdp(publisher=publisher, gate=gate, limits=limits), local_addr=(host, port)
    )
    return protocol, int(transport.get_extra_info("sockname")[1])


__all__ = ["READ_SIZE", "SyslogFramer", "SyslogUdp", "parse_syslog", "start_syslog_udp", "syslog_tcp_input"]
