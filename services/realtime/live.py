"""The live tail: a Socket.IO server (namespace ``/live``) fed from the Redis stream.

Socket protocol (what the UI follows)
-------------------------------------
Connect to ``/socket.io/`` on the gateway, namespace ``/live``, with the session
cookie (same origin) or an API key holding ``read``. Anonymous or cross-origin
connections are refused: the client gets ``connect_error``.

Client -> server

- ``subscribe`` ``{levels?: [LEVEL], services?: [str], q?: str, last_id?: str}``.
  Empty/missing lists mean "any"; ``q`` is the query language of DESIGN.md §6.
  Nothing is sent before the first ``subscribe``. A new ``subscribe`` replaces
  the previous filter (events queued under the old filter are discarded) and
  starts with a fresh backfill. ``last_id`` is the ``id`` of the last event the
  client received: a reconnecting client sends it to get exactly the events it
  missed (see ``resumed`` below). The callback (ack), if given, receives
  ``{ok: true, backfill: <events in the backfill>, resumed: <bool>}`` or
  ``{ok: false, message, position}``.

Server -> client

- ``logs`` ``[event, ...]``: a batch of events (LogEvent wire shape: ``id``,
  ``timestamp`` "...Z", ``level``, ``message``, optional fields omitted when
  null), oldest first, in stream order. The backfill comes first, as ordinary
  ``logs`` batches: without ``last_id`` it is the newest 200 buffered events
  matching the filter; with a ``last_id`` still in the buffer it is every
  matching event after it (``resumed: true``: no gap, no duplicate); with a
  ``last_id`` no longer buffered it is the newest 200 (``resumed: false``:
  there may be a gap, the UI can say so). Live batches are flushed every
  ``live_flush_ms`` ms or every ``live_batch_size`` events, whichever comes first.
- ``dropped`` ``{count}``: ``count`` events matching the filter were dropped
  because this client fell more than ``live_client_queue`` events behind; it is
  emitted right before the next ``logs`` batch.
- ``subscribe_error`` ``{message, position}``: the ``subscribe`` was invalid
  (``position`` = 0-based offset of a query syntax error, else null); the
  previous filter stays in force.

Design
------
One reader task per replica tails the stream from ``$`` (every replica reads
every event), appends each event to a ring buffer and to the bounded queue of
every matching client; it never awaits a client. One sender task per client
flushes that client's queue. Socket.IO emits only enqueue onto the Engine.IO
socket, so the sender also watches that socket's outgoing queue: while the
transport is behind (a client that stopped reading, TCP backpressure), the
sender holds off, the client's own bounded queue overflows and the oldest
events are dropped and counted, and no other client is affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, Final

import orjson
import socketio
from opentelemetry import trace
from pydantic import ValidationError
from redis.asyncio import Redis

from services.realtime.buffer import BufferedEvent, RecentEvents, stream_position
from services.realtime.schemas import SubscribeAck, SubscribeError, SubscribeRequest, validation_message
from services.realtime.subscriptions import Filter, LiveClient, Registry, build_filter
from shared.bus import STREAM, StreamEntry, last_entry_id, tail
from shared.internal import TOKEN_HEADER, Principal, token_matches
from shared.metrics import LIVE_CLIENTS, LIVE_EVENTS_DROPPED, LIVE_EVENTS_PUSHED, LIVE_PUSH_LATENCY
from shared.querylang import QuerySyntaxError
from shared.settings import Settings
from shared.telemetry import context_from_traceparent, span_link

log = logging.getLogger(__name__)
_tracer = trace.get_tracer("logwarden.realtime")

NAMESPACE: Final = "/live"
BACKFILL_LIMIT: Final = 200
BACKFILL_CHUNK: Final = 500
# Engine.IO packets allowed to wait for the transport before a client counts as slow.
TRANSPORT_BACKLOG_LIMIT: Final = 8
MAX_CLIENT_MESSAGE_BYTES: Final = 64 * 1024
_READER_BACKOFF_MAX: Final = 5.0


class _OrjsonCodec:
    """JSON codec for Socket.IO packets: orjson dumps (fast fan-out), stdlib-safe loads."""

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        """Serialise outgoing packet data (compact; orjson.Fragment values are inlined as-is)."""
        return orjson.dumps(obj).decode()

    @staticmethod
    def loads(raw: str | bytes, **_: Any) -> Any:
        """Parse incoming packet data; orjson refuses integers beyond 64 bits (no bignum DoS)."""
        return orjson.loads(raw)


def _scope_headers(environ: Mapping[str, Any]) -> dict[str, str]:
    scope = environ.get("asgi.scope") or {}
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


class LiveTail:
    """The Socket.IO server, the stream reader and the per-client senders of one replica."""

    def __init__(self, settings: Settings, *, stream: str = STREAM) -> None:
        self.settings = settings
        self.stream = stream
        self.buffer = RecentEvents(settings.live_buffer_size)
        self.clients = Registry()
        self.last_seen_id: str | None = None
        self._token = settings.internal_token.get_secret_value()
        self._senders: dict[str, asyncio.Task[None]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._flush_s = settings.live_flush_ms / 1000
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins=list(settings.origins),
            max_http_buffer_size=MAX_CLIENT_MESSAGE_BYTES,
            json=_OrjsonCodec,
            namespaces=[NAMESPACE],  # the default also accepts "/" (without our connect handler)
            logger=False,
            engineio_logger=False,
        )
        self.sio.on("connect", self._on_connect, namespace=NAMESPACE)
        self.sio.on("disconnect", self._on_disconnect, namespace=NAMESPACE)
        self.sio.on("subscribe", self._on_subscribe, namespace=NAMESPACE)

    # --- lifecycle --------------------------------------------------------------

    async def start(self, redis: Redis) -> None:
        """Resolve the start position once and start the reader task."""
        self.last_seen_id = await last_entry_id(redis, stream=self.stream)
        self._reader = asyncio.create_task(self._read_forever(redis), name="live-tail-reader")

    async def stop(self) -> None:
        """Cancel the reader and every sender."""
        tasks = [t for t in [self._reader, *self._senders.values()] if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._senders.clear()

    @property
    def reader_alive(self) -> bool:
        """True while the reader task runs (a readiness check)."""
        return self._reader is not None and not self._reader.done()

    async def _read_forever(self, redis: Redis) -> None:
        backoff = 0.1
        while True:
            try:
                # Resume after the last entry handled, so a Redis hiccup leaves no gap.
                async for batch in tail(redis, stream=self.stream, start=self.last_seen_id or "$"):
                    with self._fan_out_span(batch):
                        self.ingest(batch)
                    backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live tail reader error (%s); retrying in %.1fs", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _READER_BACKOFF_MAX)

    def _fan_out_span(self, batch: list[StreamEntry]) -> AbstractContextManager[Any]:
        # One request's entry continues its trace (gateway -> ingest -> realtime); a batch
        # mixing several requests links to each of them instead, as the indexer does.
        attributes = {"logwarden.entries": len(batch), "logwarden.live_clients": len(self.clients)}
        if len(batch) == 1 and batch[0].traceparent:
            return _tracer.start_as_current_span(
                "live fan-out", context=context_from_traceparent(batch[0].traceparent), attributes=attributes
            )
        links = [link for link in (span_link(e.traceparent) for e in batch) if link is not None]
        return _tracer.start_as_current_span("live fan-out", links=links, attributes=attributes)

    def ingest(self, batch: list[StreamEntry]) -> None:
        """Buffer and fan out a batch of stream entries (synchronous: never waits for clients)."""
        buffer, clients = self.buffer, self.clients
        for entry in batch:
            raw = entry.fields.get("events")
            # The raw array is the wire shape tail() just validated; reusing it skips a re-dump.
            events: list[dict[str, Any]] = (
                orjson.loads(raw) if isinstance(raw, bytes | str) else [e.to_dict() for e in entry.events]
            )
            for index, event in enumerate(events):
                position = stream_position(entry.entry_id, index)
                item = BufferedEvent(position, event, entry.published_ms, orjson.dumps(event))
                buffer.append(item)
                clients.fan_out(item)
            self.last_seen_id = entry.entry_id

    # --- Socket.IO handlers ---------------------------------------------------------

    def _principal(self, environ: Mapping[str, Any]) -> Principal | None:
        headers = _scope_headers(environ)
        # The ASGI wrapper checks the token too; checking here keeps the handler safe on its own.
        if not token_matches(headers.get(TOKEN_HEADER), self._token):
            return None
        return Principal.from_headers(headers)

    async def _on_connect(self, sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        principal = self._principal(environ)
        if principal is None:
            # The client's connect_error receives {"message": "authentication required"}.
            raise socketio.exceptions.ConnectionRefusedError("authentication required")
        client = LiveClient(
            sid=sid,
            principal=principal,
            queue_size=self.settings.live_client_queue,
            batch_size=self.settings.live_batch_size,
        )
        self.clients.add(client)
        self._senders[sid] = asyncio.create_task(self._send_forever(client), name=f"live-sender-{sid}")
        LIVE_CLIENTS.inc()

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        client = self.clients.remove(sid)
        if client is None:
            return
        client.closed = True
        client.has_data.set()  # let the sender notice
        LIVE_CLIENTS.dec()
        if client.dropped:
            LIVE_EVENTS_DROPPED.inc(client.dropped)
        task = self._senders.pop(sid, None)
        if task is not None:
            task.cancel()

    async def _on_subscribe(self, sid: str, data: Any = None) -> SubscribeAck | dict[str, Any]:
        client = self.clients.get(sid)
        if client is None:
            return {"ok": False, "message": "not connected", "position": None}
        try:
            request = SubscribeRequest.model_validate(data if isinstance(data, dict) else {})
            new_filter = build_filter(
                levels=list(request.levels),
                services=request.services,
                q=request.q,
                tenant_id=client.principal.tenant_id,
            )
        except QuerySyntaxError as exc:
            return await self._refuse(sid, {"message": exc.message, "position": exc.position})
        except ValidationError as exc:
            return await self._refuse(sid, {"message": validation_message(exc), "position": None})
        except ValueError as exc:  # a field the matcher cannot evaluate
            return await self._refuse(sid, {"message": str(exc), "position": None})
        # No await from the snapshot to the filter switch: every event is either
        # in this backfill or fanned out under the new filter, never both.
        backfill, resumed = self._backfill(new_filter, request.last_id)
        client.resubscribe(new_filter, backfill)
        return {"ok": True, "backfill": len(backfill), "resumed": resumed}

    async def _refuse(self, sid: str, error: SubscribeError) -> dict[str, Any]:
        await self.sio.emit("subscribe_error", dict(error), to=sid, namespace=NAMESPACE)
        return {"ok": False, **error}

    def _backfill(self, flt: Filter, last_id: str | None) -> tuple[list[BufferedEvent], bool]:
        if last_id:
            after = self.buffer.after(last_id, flt.matches_buffered)
            if after is not None:
                return after, True
        return self.buffer.last_matching(flt.matches_buffered, BACKFILL_LIMIT), False

    # --- per-client sender -----------------------------------------------------------

    def transport_backlog(self, sid: str) -> int:
        """Engine.IO packets queued for ``sid`` that its transport has not written yet."""
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        # engineio keeps one unbounded asyncio.Queue per socket; its size is the
        # only signal that the client (or its TCP connection) is not keeping up.
        socket = self.sio.eio.sockets.get(eio_sid) if eio_sid else None
        queue = getattr(socket, "queue", None)
        return queue.qsize() if queue is not None else 0

    async def _send_forever(self, client: LiveClient) -> None:
        try:
            while not client.closed:
                await client.has_data.wait()
                if client.closed:
                    return
                if client.backfill:
                    generation = client.generation
                    backfill = client.take_backfill()
                    for start in range(0, len(backfill), BACKFILL_CHUNK):
                        await self._wait_for_transport(client)
                        if client.generation != generation:
                            break  # resubscribed meanwhile: this backfill is stale
                        await self._emit_logs(client, backfill[start : start + BACKFILL_CHUNK], observe=False)
                    continue
                if not client.batch_ready.is_set():
                    # Give a batch the chance to fill, but never hold events past the flush interval.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(client.batch_ready.wait(), self._flush_s)
                await self._wait_for_transport(client)
                dropped = client.take_dropped()
                if dropped:
                    LIVE_EVENTS_DROPPED.inc(dropped)
                    await self.sio.emit("dropped", {"count": dropped}, to=client.sid, namespace=NAMESPACE)
                batch = client.take(client.batch_size)
                if batch:
                    await self._emit_logs(client, batch, observe=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("live sender for %s failed", client.sid)
            # A client without a sender would silently receive nothing: drop it so it reconnects (with last_id).
            with contextlib.suppress(Exception):
                await self.sio.disconnect(client.sid, namespace=NAMESPACE)

    async def _wait_for_transport(self, client: LiveClient) -> None:
        # While the transport is behind, hold off; the bounded queue absorbs (and drops) meanwhile.
        # Polling is deliberate: engineio offers no "queue drained" event to wait on.
        while not client.closed and self.transport_backlog(client.sid) > TRANSPORT_BACKLOG_LIMIT:  # noqa: ASYNC110
            await asyncio.sleep(self._flush_s)

    async def _emit_logs(self, client: LiveClient, batch: list[BufferedEvent], *, observe: bool) -> None:
        # Each event was encoded once by the reader: a batch is a join, not a per-client re-encode,
        # and Socket.IO's recursive binary scan sees one opaque Fragment instead of every field.
        payload = orjson.Fragment(b"[" + b",".join(item.raw for item in batch) + b"]")
        await self.sio.emit("logs", payload, to=client.sid, namespace=NAMESPACE)
        LIVE_EVENTS_PUSHED.inc(len(batch))
        if observe:
            now_ms = time.time() * 1000
            previous = -1
            for item in batch:
                # One observation per stream entry in the batch keeps the cost per batch, not per event.
                if item.published_ms != previous and item.published_ms:
                    LIVE_PUSH_LATENCY.observe(max(0.0, now_ms - item.published_ms) / 1000)
                    previous = item.published_ms
