"""File uploads: stream the multipart body to disk, then parse and publish in the background.

Receiving: python-multipart's streaming parser runs over ``request.stream()``;
part data goes straight to ``DATA_DIR/uploads/<file id>.part`` (renamed when
complete), never into memory. The byte count is checked before anything is
written, so a request over ``max_upload_bytes`` is refused with 413 having
stored at most the limit, and its partial files are deleted.

Processing (:func:`process_upload`): a worker thread decompresses (bounded),
detects the format and parses; batches cross to the event loop through a
bounded queue (:class:`ThreadFeed`), so memory stays flat for any file size.
See docs/architecture.md ("Ingest") for the FileRecord protocol with the indexer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from fastapi import Request
from opentelemetry import trace
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.ingest.inputs.compression import (
    GZIP_MAGIC,
    DecompressionError,
    GunzipReader,
    measure_gzip,
)
from services.ingest.parsing import NotALogError, ParsedRecord, ParseLimits, iter_records
from services.ingest.publish import BacklogGate, Publisher, PublishError
from services.ingest.service import TENANT_MISMATCH, apply_tenant, reason_label
from services.ingest.threads import ThreadFeed
from shared.errors import ApiError
from shared.internal import Principal
from shared.metrics import INGESTED_BYTES, REJECTED_EVENTS, UPLOAD_FILES
from shared.models import LogEvent
from shared.settings import Settings
from shared.store.base import MetaStore
from shared.store.records import FileRecord, new_id

log = logging.getLogger(__name__)
tracer = trace.get_tracer("logwarden.ingest")

FILE_FIELD: Final = "file"
MAX_FILES_PER_REQUEST: Final = 100
MAX_REPORTED_LINE_ERRORS: Final = 20
_WRITE_CHUNK: Final = 1 << 20  # hand the parser ~1 MB at a time: one thread hop per MB
_REJECT_FLUSH: Final = 10_000  # a file of nothing but bad lines still reports progress
_PROGRESS_SECONDS: Final = 1.0
_PUBLISH_RETRIES: Final = (0.5, 1.0, 2.0, 4.0, 8.0)
_UNSAFE_NAME: Final = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------------- receiving


def safe_filename(raw: str | None) -> str:
    """The client's file name without directories or control characters (display only)."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_NAME.sub("", name).strip()
    return name[:255] or "upload"


def file_type_of(filename: str) -> str:
    """Extension(s) of a file name, e.g. ``csv`` or ``ndjson.gz``."""
    parts = filename.lower().split(".")[1:]
    if len(parts) >= 2 and parts[-1] in {"gz", "gzip"}:
        return ".".join(parts[-2:])
    return parts[-1] if parts else ""


@dataclass
class _Part:
    name: str | None = None
    filename: str | None = None
    file_id: str | None = None
    path: Path | None = None
    handle: Any = None
    size: int = 0


@dataclass
class _MultipartSink:
    """Callbacks of the streaming multipart parser; they run in a worker thread."""

    uploads_dir: Path
    parts: list[_Part] = field(default_factory=list)
    current: _Part | None = None
    header_field: bytearray = field(default_factory=bytearray)
    header_value: bytearray = field(default_factory=bytearray)
    headers: dict[str, bytes] = field(default_factory=dict)

    def callbacks(self) -> dict[str, Any]:
        """The callback table for MultipartParser."""
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        """A new part starts."""
        self.current = _Part()
        self.headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        """Part of a header name."""
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        """Part of a header value."""
        self.header_value += data[start:end]

    def on_header_end(self) -> None:
        """One header complete."""
        self.headers[self.header_field.decode("latin-1").lower()] = bytes(self.header_value)
        self.header_field.clear()
        self.header_value.clear()

    def on_headers_finished(self) -> None:
        """Headers done: open a file for a ``file`` part, ignore other fields."""
        part = self.current
        assert part is not None
        _, params = parse_options_header(self.headers.get("content-disposition", b""))
        name = params.get(b"name")
        part.name = name.decode("utf-8", "replace") if name is not None else None
        filename = params.get(b"filename")
        part.filename = filename.decode("utf-8", "replace") if filename is not None else None
        if part.name != FILE_FIELD:
            return
        if sum(1 for p in self.parts if p.file_id) >= MAX_FILES_PER_REQUEST:
            raise ApiError(413, f"at most {MAX_FILES_PER_REQUEST} files per request")
        part.file_id = new_id()
        part.path = self.uploads_dir / f"{part.file_id}.part"
        part.handle = part.path.open("wb")
        self.parts.append(part)

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        """File bytes go to disk; other fields' bytes are dropped."""
        part = self.current
        if part is not None and part.handle is not None:
            part.handle.write(data[start:end])
            part.size += end - start

    def on_part_end(self) -> None:
        """Close the part's file."""
        part = self.current
        if part is not None and part.handle is not None:
            part.handle.close()
            part.handle = None
        self.current = None

    def discard(self) -> None:
        """Close and delete every file written so far."""
        for part in self.parts:
            if part.handle is not None:
                with contextlib.suppress(OSError):
                    part.handle.close()
                part.handle = None
            if part.path is not None:
                part.path.unlink(missing_ok=True)


def _feed(parser: MultipartParser, data: bytes) -> None:
    parser.write(data)


def _finish(parser: MultipartParser, sink: _MultipartSink) -> list[_Part]:
    parser.finalize()
    files = [p for p in sink.parts if p.file_id]
    for part in files:
        if part.handle is not None:  # the body ended inside this part
            raise ApiError(400, "the multipart body ends inside a file part")
        assert part.path is not None
        final = part.path.with_suffix("")
        os.replace(part.path, final)
        part.path = final
    return files


async def receive_upload(
    request: Request, *, settings: Settings, meta: MetaStore, principal: Principal
) -> list[FileRecord]:
    """Stream a multipart upload to disk and create one FileRecord (status ``uploaded``) per file."""
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"upload larger than {limit} bytes")
    media, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if media != b"multipart/form-data" or not boundary:
        raise ApiError(415, "send the files as multipart/form-data with the field 'file'")
    uploads_dir = settings.data_dir / "uploads"
    await asyncio.to_thread(uploads_dir.mkdir, parents=True, exist_ok=True)
    sink = _MultipartSink(uploads_dir)
    try:
        parser = MultipartParser(boundary, sink.callbacks())  # type: ignore[arg-type]
    except ValueError as exc:
        raise ApiError(400, "invalid multipart boundary") from exc
    received = 0
    pending: list[bytes] = []
    pending_size = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > limit:
                raise ApiError(413, f"upload larger than {limit} bytes")
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= _WRITE_CHUNK:
                await asyncio.to_thread(_feed, parser, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            await asyncio.to_thread(_feed, parser, b"".join(pending))
        parts = await asyncio.to_thread(_finish, parser, sink)
    except MultipartParseError as exc:
        await asyncio.to_thread(sink.discard)
        raise ApiError(400, "the multipart body is malformed") from exc
    except BaseException:
        await asyncio.to_thread(sink.discard)
        raise
    INGESTED_BYTES.labels("upload").inc(received)
    if not parts:
        raise ApiError(422, "no file: send the files in the multipart field 'file'")
    records = []
    for part in parts:
        filename = safe_filename(part.filename)
        record = FileRecord(
            id=part.file_id or new_id(),
            filename=filename,
            file_type=file_type_of(filename),
            file_size=part.size,
            status="uploaded",
            uploaded_by=principal.name,
            tenant_id=principal.tenant_id,
            path=str(part.path),
        )
        records.append(await meta.create_file(record))
    return records


# ---------------------------------------------------------------------------------- processing


@dataclass(slots=True)
class _Chunk:
    """What the parsing thread hands over: events plus rejection bookkeeping since the last chunk."""

    events: list[LogEvent]
    rejected: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    fmt: str | None = None
    final: bool = False


class UploadFailed(Exception):
    """The file cannot be ingested; ``reason`` goes to the FileRecord."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _open_content(path: Path, settings: Settings) -> tuple[Any, Any]:
    """(raw file, readable content): gzip detected by magic bytes, verified within limits first."""
    raw = path.open("rb")
    try:
        if raw.read(2) == GZIP_MAGIC:
            raw.seek(0)
            # A full bounded pass first: a bomb or a corrupt file fails before any event is published.
            measure_gzip(raw, max_bytes=settings.max_decompressed_bytes, max_ratio=settings.max_gzip_ratio)
            raw.seek(0)
            return raw, GunzipReader(raw, max_bytes=settings.max_decompressed_bytes, max_ratio=settings.max_gzip_ratio)
        raw.seek(0)
        return raw, raw
    except BaseException:
        raw.close()
        raise


def parse_file_chunks(
    path: Path, *, file_id: str, tenant_id: str | None, settings: Settings, batch_size: int
) -> Iterator[_Chunk]:
    """Parse a stored upload into chunks of ``batch_size`` events (runs in a worker thread)."""
    limits = ParseLimits.from_settings(settings)
    try:
        raw, content = _open_content(path, settings)
    except DecompressionError as exc:
        raise UploadFailed(exc.reason) from None
    with raw:
        try:
            reader = iter_records(content, limits=limits, source=f"upload:{file_id}")
        except NotALogError as exc:
            raise UploadFailed(f"not a log file: {exc.reason}") from None
        yield _Chunk(events=[], fmt=reader.format)
        chunk = _Chunk(events=[])
        reported = 0
        try:
            for item in reader:
                if isinstance(item, ParsedRecord):
                    reason = apply_tenant(item.event, tenant_id)
                    if reason is None:
                        chunk.events.append(item.event)
                        if len(chunk.events) >= batch_size:
                            yield chunk
                            chunk = _Chunk(events=[])
                        continue
                    line, text = item.line_number, TENANT_MISMATCH
                else:
                    line, text = item.line_number, item.reason
                chunk.rejected += 1
                chunk.reasons[reason_label(text)] += 1
                if reported < MAX_REPORTED_LINE_ERRORS:
                    chunk.errors.append({"line": line, "reason": text})
                    reported += 1
                if chunk.rejected >= _REJECT_FLUSH:
                    yield chunk
                    chunk = _Chunk(events=[])
        except DecompressionError as exc:
            raise UploadFailed(exc.reason) from None
        chunk.final = True
        yield chunk


@dataclass
class _Progress:
    """What has been written to the FileRecord and what is known now."""

    published: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    stored: tuple[int, int, int] = (0, 0, 0)
    stored_at: float = 0.0


async def _publish_with_retry(publisher: Publisher, events: list[LogEvent], fmt: str) -> None:
    for delay in (*_PUBLISH_RETRIES, None):
        try:
            await publisher.publish(events, input_name="upload", fmt=fmt)
            return
        except PublishError:
            if delay is None:
                raise
            await asyncio.sleep(delay)


async def process_upload(
    *, record: FileRecord, settings: Settings, meta: MetaStore, publisher: Publisher, gate: BacklogGate
) -> FileRecord | None:
    """Parse a stored upload and publish its events, keeping the FileRecord up to date.

    The protocol with the indexer (docs/architecture.md "Ingest"): while
    parsing, ``records_count`` is kept strictly above the number of events
    published (it counts the next batch already parsed), so the indexer's
    ``indexed_count >= records_count`` can only hold once the last batch is
    out; the exact final count is written before the last XADD.
    Returns the record as ingest left it (None when it was deleted meanwhile).
    """
    file_id = record.id
    if record.path is None:
        return await _fail(meta, file_id, "the stored file is missing")
    path = Path(record.path)
    with tracer.start_as_current_span("upload.process", attributes={"logwarden.file_id": file_id}):
        if await meta.update_file(file_id, status="processing") is None:
            return None
        feed: ThreadFeed[_Chunk] = ThreadFeed(
            lambda: parse_file_chunks(
                path, file_id=file_id, tenant_id=record.tenant_id, settings=settings, batch_size=publisher.batch_size
            ),
            maxsize=8,
        )
        try:
            return await _drive(feed, file_id=file_id, meta=meta, publisher=publisher, gate=gate)
        except UploadFailed as exc:
            return await _fail(meta, file_id, exc.reason)
        except FileNotFoundError:
            return await _fail(meta, file_id, "the stored file is missing")
        except PublishError as exc:
            return await _fail(meta, file_id, f"publishing failed: {exc}")
        finally:
            await feed.close()


async def _fail(meta: MetaStore, file_id: str, reason: str) -> FileRecord | None:
    UPLOAD_FILES.labels("failed").inc()
    log.info("upload %s failed: %s", file_id, reason)
    return await meta.update_file(file_id, status="failed", failure_reason=reason)


async def _drive(
    feed: ThreadFeed[_Chunk], *, file_id: str, meta: MetaStore, publisher: Publisher, gate: BacklogGate
) -> FileRecord | None:
    progress = _Progress()
    hand: list[_Chunk] = []
    fmt = "text"

    def take(chunk: _Chunk) -> None:
        # Rejections count as soon as they are known, so every FileRecord write is complete.
        progress.rejected += chunk.rejected
        room = MAX_REPORTED_LINE_ERRORS - len(progress.errors)
        progress.errors.extend(chunk.errors[: max(room, 0)])
        for label, n in chunk.reasons.items():
            REJECTED_EVENTS.labels("upload", label).inc(n)
        hand.append(chunk)

    async def pull() -> bool:
        more, chunk = await feed.get()
        if more and chunk is not None:
            take(chunk)
        return more

    async def store(records_count: int) -> bool:
        state = (records_count, progress.rejected, len(progress.errors))
        if state == progress.stored:
            return True
        updated = await meta.update_file(
            file_id, records_count=records_count, rejected_count=progress.rejected, errors=list(progress.errors)
        )
        progress.stored, progress.stored_at = state, time.monotonic()
        return updated is not None

    def final_in_hand() -> bool:
        return any(c.final for c in hand)

    while True:
        if not hand and not await pull():
            break
        head = hand[0]
        if head.fmt is not None:
            fmt = head.fmt
            if await meta.update_file(file_id, format=fmt) is None:
                return None
        if head.events:
            through = progress.published + len(head.events)
            if head.final:
                ok = await store(through)
            elif progress.stored[0] <= through:
                # Look ahead: hold the head until a later chunk with events (or the end) is parsed,
                # then take whatever else is ready, so one write covers several batches.
                while not final_in_hand() and not any(c.events for c in hand[1:]):
                    if not await pull():
                        break
                while (ready := feed.get_nowait()) is not None and ready[0] and ready[1] is not None:
                    take(ready[1])
                target = progress.published + sum(len(c.events) for c in hand)
                ok = await store(target)
            else:
                ok = True
            if not ok:
                return None  # deleted while processing
            await gate.wait_below(input_name="upload")
            await _publish_with_retry(publisher, head.events, fmt)
            progress.published = through
        elif time.monotonic() - progress.stored_at > _PROGRESS_SECONDS and not await store(progress.stored[0]):
            return None
        hand.pop(0)
        if head.final:
            break
    if progress.published == 0:
        reason = "the file contains no log records"
        if progress.errors:
            first = progress.errors[0]
            reason = f"no record could be parsed (line {first['line']}: {first['reason']})"
        await store(0)
        return await _fail(meta, file_id, reason)
    await store(progress.published)
    UPLOAD_FILES.labels("parsed").inc()
    return await meta.get_file(file_id)


# ---------------------------------------------------------------------------------- lifecycle


class UploadManager:
    """Runs upload processing in background tasks (a few at a time), cancels them on shutdown."""

    def __init__(
        self, *, settings: Settings, meta: MetaStore, publisher: Publisher, gate: BacklogGate, concurrency: int = 2
    ) -> None:
        self._settings = settings
        self._meta = meta
        self._publisher = publisher
        self._gate = gate
        self._semaphore = asyncio.Semaphore(concurrency)
        self._tasks: dict[str, asyncio.Task[FileRecord | None]] = {}
        self.uploads_dir = settings.data_dir / "uploads"

    def start(self, record: FileRecord) -> asyncio.Task[FileRecord | None]:
        """Process ``record`` in the background; the task is kept until it ends."""
        task = asyncio.create_task(self._run(record), name=f"upload-{record.id}")
        self._tasks[record.id] = task
        task.add_done_callback(lambda _: self._tasks.pop(record.id, None))
        return task

    def task(self, file_id: str) -> asyncio.Task[FileRecord | None] | None:
        """The running task of a file, if any."""
        return self._tasks.get(file_id)

    async def _run(self, record: FileRecord) -> FileRecord | None:
        async with self._semaphore:
            try:
                return await process_upload(
                    record=record,
                    settings=self._settings,
                    meta=self._meta,
                    publisher=self._publisher,
                    gate=self._gate,
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("processing upload %s failed", record.id)
                with contextlib.suppress(Exception):
                    await _fail(self._meta, record.id, "internal error while processing the file")
                return None

    async def cancel(self, file_id: str) -> bool:
        """Stop processing a file (before deleting it); True when a task was running."""
        task = self._tasks.get(file_id)
        if task is None:
            return False
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return True

    async def close(self) -> None:
        """Cancel every running task and wait for them (shutdown)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def recover(self) -> tuple[int, int]:
        """After a restart: resume files never started, fail files interrupted mid-way.

        ``uploaded`` files published nothing yet, so they are processed now.
        ``processing`` files already published part of their events, and
        re-running them would duplicate those (fresh ids), so they are marked
        ``failed`` with a reason telling the user to delete and re-upload.
        Only files stored under this instance's data dir are touched.
        Returns (resumed, failed).
        """
        await asyncio.to_thread(self._remove_partials)
        resumed = failed = 0
        for record in await self._meta.list_files(limit=100_000):
            if record.status not in ("uploaded", "processing") or not record.path:
                continue
            path = Path(record.path)
            if path.parent.resolve() != self.uploads_dir.resolve():
                continue
            if not await asyncio.to_thread(path.exists):
                await _fail(self._meta, record.id, "the stored file is missing")
                failed += 1
            elif record.status == "uploaded":
                self.start(record)
                resumed += 1
            else:
                await _fail(
                    self._meta,
                    record.id,
                    "ingest restarted while processing this file; some events may have been published: "
                    "delete the file and upload it again",
                )
                failed += 1
        return resumed, failed

    def _remove_partials(self) -> None:
        if self.uploads_dir.is_dir():
            for partial in self.uploads_dir.glob("*.part"):
                partial.unlink(missing_ok=True)
