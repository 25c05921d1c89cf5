"""Newline-delimited JSON over TCP (port 5170), and the stream plumbing syslog over TCP shares.

Each connection is read in chunks; complete lines are parsed (in a worker
thread when there are many) and published. A line over ``max_line_bytes`` is
rejected and counted, and the connection goes on after its newline.
Backpressure: while the indexer's backlog is over the limit the handler stops
reading its socket, so the kernel's TCP flow control slows the client down;
nothing is dropped. A failed publish is retried the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final, Protocol

import orjson

from services.ingest.parsing import ParseLimits, RecordError, normalise_counted
from services.ingest.publish import BacklogGate, Publisher, PublishError
from services.ingest.service import count_rejections
from shared.metrics import INGESTED_BYTES
from shared.models import LogEvent

log = logging.getLogger(__name__)

READ_SIZE: Final = 64 * 1024
_INLINE_MESSAGES: Final = 8
_PUBLISH_RETRY_SECONDS: Final = 1.0

Message = bytes | None  # None stands for a message over the size limit (already skipped)
Parsed = tuple[list[LogEvent], list[str]]


class Framer(Protocol):
    """Splits a byte stream into messages."""

    def feed(self, data: bytes) -> list[Message]:
        """Messages completed by ``data``."""

    def finish(self) -> list[Message]:
        """What is left when the peer closes."""


class LineFramer:
    """Newline framing with a per-line cap; an overlong line becomes one None and is skipped."""

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._buffer = bytearray()
        self._skipping = False

    def feed(self, data: bytes) -> list[Message]:
        """Complete lines of ``data`` (without CR/LF)."""
        out: list[Message] = []
        start = 0
        while (newline := data.find(b"\n", start)) >= 0:
            piece = data[start:newline]
            start = newline + 1
            if self._skipping:
                self._skipping = False  # the rest of an overlong line: already reported
                continue
            if len(self._buffer) + len(piece) > self._max + 1:  # +1: a CR before the LF
                self._buffer.clear()
                out.append(None)
                continue
            line = bytes(self._buffer) + piece if self._buffer else piece
            self._buffer.clear()
            if line.endswith(b"\r"):
                line = line[:-1]
            out.append(line if len(line) <= self._max else None)
        rest = data[start:]
        if rest and not self._skipping:
            if len(self._buffer) + len(rest) > self._max + 1:
                self._buffer.clear()
                self._skipping = True
                out.append(None)
            else:
                self._buffer += rest
        return out

    def finish(self) -> list[Message]:
        """A last line without a newline."""
        line = bytes(self._buffer).rstrip(b"\r")
        self._buffer.clear()
        return [line] if line.strip() else []


def parse_json_lines(messages: list[Message], *, limits: ParseLimits, source: str) -> Parsed:
    """Events and rejection reasons of NDJSON lines."""
    events: list[LogEvent] = []
    rejected: list[str] = []
    now = datetime.now(UTC)
    for raw in messages:
        if raw is None:
            rejected.append(f"line longer than {limits.max_line_bytes} bytes")
            continue
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            rejected.append(f"invalid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            rejected.append("JSON value is not an object")
            continue
        try:
            event, _ = normalise_counted(value, source=source, limits=limits, now=now)
        except RecordError as exc:
            rejected.append(exc.reason)
            continue
        events.append(event)
    return events, rejected


class StreamInput:
    """One TCP listener: framing + parsing + publishing, with backpressure by not reading."""

    def __init__(
        self,
        *,
        name: str,
        fmt: str,
        framer: Callable[[], Framer],
        parse: Callable[[list[Message]], Parsed],
        publisher: Publisher,
        gate: BacklogGate,
    ) -> None:
        self.name = name
        self._fmt = fmt
        self._framer = framer
        self._parse = parse
        self._publisher = publisher
        self._gate = gate
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._handle, host, port, limit=READ_SIZE)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and end open connections."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        framer = self._framer()
        try:
            while True:
                # Not reading is the backpressure: the socket buffers fill and TCP slows the sender.
                await self._gate.wait_below(input_name=self.name)
                data = await reader.read(READ_SIZE)
                if not data:
                    await self._process(framer.finish())
                    return
                INGESTED_BYTES.labels(self.name).inc(len(data))
                messages = framer.feed(data)
                if messages:
                    await self._process(messages)
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _process(self, messages: list[Message]) -> None:
        if not messages:
            return
        if len(messages) > _INLINE_MESSAGES:
            events, rejected = await asyncio.to_thread(self._parse, messages)
        else:
            events, rejected = self._parse(messages)
        if rejected:
            count_rejections(self.name, rejected)
        while events:
            try:
                await self._publisher.publish(events, input_name=self.name, fmt=self._fmt)
                return
            except PublishError as exc:
                # The client waits (we do not read) rather than losing events.
                log.warning("%s input: %s; retrying", self.name, exc)
                await asyncio.sleep(_PUBLISH_RETRY_SECONDS)


def json_lines_input(*, publisher: Publisher, gate: BacklogGate, limits: ParseLimits) -> StreamInput:
    """The TCP NDJSON input (source ``tcp``)."""
    return StreamInput(
        name="tcp",
        fmt="ndjson",
        framer=lambda: LineFramer(limits.max_line_bytes),
        parse=lambda messages: parse_json_lines(messages, limits=limits, source="tcp"),
        publisher=publisher,
        gate=gate,
    )
