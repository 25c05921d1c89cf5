"""Streaming parse of files and request bodies into events.

Everything here is synchronous and pure (no I/O besides reading the given stream); the
service runs it in a worker thread. Memory stays bounded by the limits whatever the input.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Final

import orjson

from shared.models import LogEvent

from .formats import FORMATS, MULTILINE_FORMATS, detect_format, match_line, parse_text_fallback
from .limits import NotALogError, ParseLimits, RecordError
from .normalise import normalise_counted
from .timestamps import TIMESTAMP_PREFIX

_SNIFF_BYTES: Final[int] = 64 * 1024
_SAMPLE_LINES: Final[int] = 50
_CHUNK: Final[int] = 64 * 1024
_BOM: Final[bytes] = b"\xef\xbb\xbf"
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"GIF87a", "GIF image"),
    (b"GIF89a", "GIF image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"%PDF-", "PDF document"),
    (b"PK\x03\x04", "ZIP archive"),
    (b"\x1f\x8b", "gzip-compressed data"),
    (b"\xfd7zXZ\x00", "xz-compressed data"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data"),
    (b"7z\xbc\xaf\x27\x1c", "7z archive"),
    (b"\x7fELF", "ELF executable"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"\xff\xfe", "UTF-16 text, which is not supported"),
    (b"\xfe\xff", "UTF-16 text, which is not supported"),
)
# Control bytes that real text logs do not contain (tab, LF, CR, FF, ESC are fine).
_CONTROL_RE: Final[re.Pattern[bytes]] = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


@dataclass(slots=True)
class ParsedRecord:
    """One event parsed from the input; ``line_number`` is its first line (1-based)."""

    line_number: int
    event: LogEvent
    index: int = 0
    dropped_fields: int = 0


@dataclass(slots=True)
class RejectedRecord:
    """One record that could not become an event, with a reason safe to show to the user."""

    line_number: int
    reason: str
    index: int = 0


@dataclass(slots=True)
class PayloadResult:
    """Outcome of :func:`parse_payload`; unpacks as ``events, rejected = result``."""

    events: list[LogEvent] = field(default_factory=list)
    rejected: list[RejectedRecord] = field(default_factory=list)
    dropped_fields: int = 0

    def __iter__(self) -> Iterator[Any]:
        """Yield events then rejected, so the result unpacks like a 2-tuple."""
        yield self.events
        yield self.rejected


def sniff_binary(head: bytes) -> None:
    """Raise NotALogError when the first bytes of an input are clearly not a text log."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            raise NotALogError(f"file looks binary ({what})")
    sample = head[:_SNIFF_BYTES]
    if b"\x00" in sample:
        raise NotALogError("file looks binary (contains NUL bytes)")
    if sample and len(_CONTROL_RE.findall(sample)) * 20 > len(sample):
        raise NotALogError("file looks binary (control characters)")
    lines = sample.split(b"\n")
    if len(sample) >= _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut inside a UTF-8 sequence
    lines = [line for line in lines[:20] if line.strip()]
    invalid = 0
    for line in lines:
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            invalid += 1
    if lines and invalid * 2 > len(lines):
        raise NotALogError("file looks binary (not UTF-8 text)")


class _Chain(io.RawIOBase):
    """Replays the sniffed head, then continues with the original stream."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        super().__init__()
        self._head = memoryview(head)
        self._stream = stream

    def readable(self) -> bool:
        """Always readable."""
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the head first, then from the stream."""
        size = len(buffer)
        if self._head:
            count = min(size, len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._stream.read(size)
        count = len(data)
        buffer[:count] = data
        return count


def _read_head(stream: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    total = 0
    while total < size:
        data = stream.read(size - total)
        if not data:
            break
        parts.append(data)
        total += len(data)
    return b"".join(parts)


def _iter_lines(reader: io.BufferedIOBase, cap: int) -> Iterator[tuple[int, bytes | None]]:
    """(line number, line without EOL) pairs; None for a line over ``cap`` bytes, skipped unread."""
    readline = reader.readline
    limit = cap + 2  # room for "\r\n"
    line_no = 0
    while True:
        chunk = readline(limit)
        if not chunk:
            return
        line_no += 1
        if chunk[-1:] == b"\n":
            body = chunk[:-2] if chunk[-2:-1] == b"\r" else chunk[:-1]
        elif len(chunk) < limit:
            body = chunk[:-1] if chunk[-1:] == b"\r" else chunk  # last line, no newline
        else:
            # Over-long line: discard it piecewise until its newline so memory stays bounded.
            while True:
                more = readline(limit)
                if not more or more[-1:] == b"\n":
                    break
            yield line_no, None
            continue
        yield line_no, (body if len(body) <= cap else None)


class _JsonSplitter:
    """Incremental splitter of a JSON array (or concatenated objects) into element bytes.

    Tracks string/escape state and depth only, so a 1 GB array is read in constant memory;
    each element is then parsed on its own by orjson.
    """

    _ANY = re.compile(rb'["\\\[\]{},]')
    _STR = re.compile(rb'["\\]')

    def __init__(self, max_bytes: int, max_depth: int) -> None:
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.mode: str | None = None  # "array" or "objects"
        self.depth = 0
        self.in_string = False
        self.escape = False
        self.region: list[bytes] = []
        self.region_size = 0
        self.region_open = False
        self.region_line = 1
        self.region_start = 0
        self.too_big = False
        self.too_deep = False
        self.line = 1
        self.line_pos = 0
        self.closed = False

    def _line_at(self, chunk: bytes, pos: int) -> int:
        self.line += chunk.count(b"\n", self.line_pos, pos)
        self.line_pos = pos
        return self.line

    def _open(self, chunk: bytes, pos: int) -> None:
        self.region_open = True
        self.region_start = pos
        self.region_line = self._line_at(chunk, pos)
        self.region = []
        self.region_size = 0
        self.too_big = self.too_deep = False

    def _close(self, chunk: bytes, end: int, out: list[tuple[int, bytes | None, str | None]]) -> None:
        piece = chunk[self.region_start : end]
        self.region_open = False
        if self.region_size + len(piece) > self.max_bytes:
            self.too_big = True
        data = b"" if self.too_big else b"".join([*self.region, piece])
        self.region = []
        stripped = data.lstrip()
        line = self.region_line + data[: len(data) - len(stripped)].count(b"\n")
        if self.too_big:
            out.append((line, None, f"JSON element larger than {self.max_bytes} bytes"))
        elif self.too_deep:
            out.append((line, None, f"JSON nesting deeper than {self.max_depth} levels"))
        elif stripped.strip():
            out.append((line, stripped.rstrip(), None))

    def feed(self, chunk: bytes) -> list[tuple[int, bytes | None, str | None]]:
        """Consume one chunk; return (line, element bytes, None) or (line, None, reason) items."""
        out: list[tuple[int, bytes | None, str | None]] = []
        n = len(chunk)
        pos = 0
        self.line_pos = 0
        if self.escape and n:
            self.escape = False
            pos = 1
        element_level = 1 if self.mode == "array" else 0
        while pos < n:
            if self.in_string:
                m = self._STR.search(chunk, pos)
                if m is None:
                    break
                i = m.start()
                if chunk[i] == 0x5C:  # backslash: skip the escaped byte, maybe in the next chunk
                    if i + 1 >= n:
                        self.escape = True
                        break
                    pos = i + 2
                    continue
                self.in_string = False
                pos = i + 1
                continue
            m = self._ANY.search(chunk, pos)
            if m is None:
                if self.mode is None and chunk[pos:].strip():
                    self.mode = "objects"
                break
            i = m.start()
            c = chunk[i]
            pos = i + 1
            if self.closed:
                break  # bytes after the closing "]" are ignored
            if self.mode is None:
                if c == 0x5B:  # "["
                    self.mode = "array"
                    element_level = 1
                    self.depth = 1
                    self._open(chunk, pos)
                    continue
                self.mode = "objects"
                element_level = 0
            if c == 0x22:  # '"'
                self.in_string = True
                continue
            if c in (0x7B, 0x5B):  # "{" "["
                if self.depth == 0 and not self.region_open:
                    self._open(chunk, i)
                self.depth += 1
                if self.depth - element_level > self.max_depth:
                    self.too_deep = True
                continue
            if c in (0x7D, 0x5D):  # "}" "]"
                self.depth -= 1
                if self.mode == "array" and self.depth == 0:
                    self._close(chunk, i, out)
                    self.closed = True
                elif self.mode == "objects" and self.depth == 0 and self.region_open:
                    self._close(chunk, i + 1, out)
                continue
            # ","
            if self.mode == "array" and self.depth == 1:
                self._close(chunk, i, out)
                self._open(chunk, pos)
        if self.region_open:
            piece = chunk[self.region_start :]
            if not self.too_big:
                self.region.append(piece)
            self.region_size += len(piece)
            if self.region_size > self.max_bytes:
                self.too_big = True
                self.region = []
            self.region_start = 0
        self.line += chunk.count(b"\n", self.line_pos)
        self.line_pos = 0
        return out

    def finish(self) -> list[tuple[int, bytes | None, str | None]]:
        """Report what is left at end of input (an unterminated element or array)."""
        out: list[tuple[int, bytes | None, str | None]] = []
        if self.region_open and (self.region_size or self.in_string or self.depth):
            data = b"".join(self.region).strip()
            if data or self.depth:
                out.append((self.region_line, None, "unterminated JSON at end of input"))
        elif self.mode == "array" and not self.closed:
            out.append((self.line, None, "unterminated JSON array at end of input"))
        return out


class RecordReader:
    """Iterator over the records of one input; ``format`` is the (detected) format."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        fmt: str | None,
        limits: ParseLimits,
        source: str,
        now: datetime | None,
    ) -> None:
        head = _read_head(stream, _SNIFF_BYTES)
        sniff_binary(head)
        if head.startswith(_BOM):
            head = head[len(_BOM) :]
        self.limits = limits
        self.source = source
        self.now = now or datetime.now(UTC)
        sample = [
            line.decode("utf-8", "replace").rstrip("\r") for line in head.split(b"\n", _SAMPLE_LINES)[:_SAMPLE_LINES]
        ]
        if fmt is None:
            fmt = detect_format(sample)
        elif fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        self.format: str = fmt
        # Plain text joins continuation lines only when its lines usually start with a timestamp.
        stamped = [line for line in sample if line.strip()]
        self._text_stamped = bool(stamped) and (
            sum(TIMESTAMP_PREFIX.match(line) is not None for line in stamped) * 2 >= len(stamped)
        )
        self._reader = io.BufferedReader(_Chain(head, stream), buffer_size=_CHUNK)
        self._records = self._generate()
        self.dropped_fields = 0

    def __iter__(self) -> Iterator[ParsedRecord | RejectedRecord]:
        """The reader is its own iterator."""
        return self

    def __next__(self) -> ParsedRecord | RejectedRecord:
        """Next parsed or rejected record."""
        return next(self._records)

    # -- dispatch --------------------------------------------------------------------------------
    def _generate(self) -> Iterator[ParsedRecord | RejectedRecord]:
        if self.format == "json":
            return self._json()
        if self.format == "csv":
            return self._csv()
        if self.format == "ndjson":
            return self._ndjson()
        return self._text()

    def _too_long(self, line_no: int, index: int) -> RejectedRecord:
        return RejectedRecord(line_no, f"line longer than {self.limits.max_line_bytes} bytes", index)

    def _event(self, record: dict[str, Any], line_no: int, index: int) -> ParsedRecord | RejectedRecord:
        try:
            event, dropped = normalise_counted(record, source=self.source, limits=self.limits, now=self.now)
        except RecordError as exc:
            return RejectedRecord(line_no, exc.reason, index)
        self.dropped_fields += dropped
        return ParsedRecord(line_no, event, index, dropped)

    # -- NDJSON ----------------------------------------------------------------------------------
    def _ndjson(self) -> Iterator[ParsedRecord | RejectedRecord]:
        index = 0
        loads = orjson.loads
        for line_no, raw in _iter_lines(self._reader, self.limits.max_line_bytes):
            if raw is None:
                yield self._too_long(line_no, index)
                index += 1
                continue
            if not raw.strip():
                continue
            try:
                value = loads(raw)
            except orjson.JSONDecodeError as exc:
                yield RejectedRecord(line_no, f"invalid JSON: {exc}", index)
                index += 1
                continue
            if isinstance(value, dict):
                yield self._event(value, line_no, index)
            else:
                yield RejectedRecord(line_no, "JSON value is not an object", index)
            index += 1

    # -- JSON array ------------------------------------------------------------------------------
    def _json(self) -> Iterator[ParsedRecord | RejectedRecord]:
        splitter = _JsonSplitter(self.limits.max_event_bytes, self.limits.max_json_depth)
        index = 0
        read = self._reader.read
        while True:
            chunk = read(_CHUNK)
            items = splitter.feed(chunk) if chunk else splitter.finish()
            for line_no, data, reason in items:
                if data is None:
                    yield RejectedRecord(line_no, reason or "invalid JSON", index)
                else:
                    try:
                        value = orjson.loads(data)
                    except orjson.JSONDecodeError as exc:
                        yield RejectedRecord(line_no, f"invalid JSON: {exc}", index)
                    else:
                        if isinstance(value, dict):
                            yield self._event(value, line_no, index)
                        else:
                            yield RejectedRecord(line_no, "JSON array element is not an object", index)
                index += 1
            if not chunk:
                return

    # -- CSV -------------------------------------------------------------------------------------
    def _csv(self) -> Iterator[ParsedRecord | RejectedRecord]:
        too_long: list[int] = []

        def text_lines() -> Iterator[str]:
            for line_no, raw in _iter_lines(self._reader, self.limits.max_line_bytes):
                if raw is None:
                    too_long.append(line_no)
                    yield "\n"  # an empty row, skipped below; the rejection is reported instead
                else:
                    yield raw.decode("utf-8", "replace") + "\n"

        reader = csv.reader(text_lines())
        header: list[str] | None = None
        index = 0
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                yield RejectedRecord(start, f"CSV: {exc}", index)
                index += 1
                continue
            while too_long:
                yield self._too_long(too_long.pop(0), index)
                index += 1
            if not row or not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip().lstrip("\ufeff") or f"column_{i + 1}" for i, cell in enumerate(row)]
                continue
            record: dict[str, Any] = {}
            for i, cell in enumerate(row):
                if cell == "":
                    continue  # an empty cell is an absent field, not an empty string
                record[header[i] if i < len(header) else f"column_{i + 1}"] = cell
            yield self._event(record, start, index)
            index += 1
        for line_no in too_long:
            yield self._too_long(line_no, index)
            index += 1

    # -- line formats with multi-line joining ------------------------------------------------------
    def _text(self) -> Iterator[ParsedRecord | RejectedRecord]:
        fmt = self.format
        multiline = fmt in MULTILINE_FORMATS and (fmt != "text" or self._text_stamped)
        max_event = self.limits.max_event_bytes
        pending: dict[str, Any] | None = None
        pending_line = 0
        pending_parts: list[str] = []
        pending_size = 0
        truncated = False
        index = 0
        for line_no, raw in _iter_lines(self._reader, self.limits.max_line_bytes):
            if raw is None:
                if pending is not None:
                    yield self._flush(pending, pending_parts, truncated, pending_line, index)
                    index += 1
                    pending = None
                yield self._too_long(line_no, index)
                index += 1
                continue
            line = raw.decode("utf-8", "replace")
            if not line.strip():
                continue
            if multiline and pending is not None and line[0] in " \t":
                record = None
                continuation = True
            else:
                try:
                    record = match_line(fmt, line)
                except RecordError as exc:
                    yield RejectedRecord(line_no, exc.reason, index)
                    index += 1
                    continue
                if fmt == "text":
                    continuation = (
                        multiline and pending is not None and record is not None and "timestamp" not in record
                    )
                else:
                    continuation = (
                        record is None
                        and multiline
                        and pending is not None
                        and TIMESTAMP_PREFIX.match(line.lstrip("[")) is None
                    )
            if continuation:
                if pending_size + len(line) < max_event:
                    pending_parts.append(line)
                    pending_size += len(line) + 1
                else:
                    truncated = True  # bounded: the rest of a giant stack trace is dropped
                continue
            if pending is not None:
                yield self._flush(pending, pending_parts, truncated, pending_line, index)
                index += 1
            if not multiline:
                yield self._event(record if record is not None else parse_text_fallback(line.strip()), line_no, index)
                index += 1
                pending = None
                continue
            pending = record if record is not None else parse_text_fallback(line.strip())
            pending_line = line_no
            pending_parts = []
            pending_size = len(line)
            truncated = False
        if pending is not None:
            yield self._flush(pending, pending_parts, truncated, pending_line, index)

    def _flush(
        self, record: dict[str, Any], parts: list[str], truncated: bool, line_no: int, index: int
    ) -> ParsedRecord | RejectedRecord:
        if parts:
            record["message"] = "\n".join([record.get("message", ""), *parts])
        if truncated:
            record["truncated"] = "true"
        return self._event(record, line_no, index)


def iter_records(
    stream: BinaryIO,
    *,
    fmt: str | None = None,
    limits: ParseLimits,
    source: str = "upload",
    now: datetime | None = None,
) -> RecordReader:
    """Parse a (decompressed) byte stream into ParsedRecord/RejectedRecord items, lazily.

    Raises NotALogError at once when the input is binary. ``fmt`` None means detect; the
    result's ``format`` attribute tells which format was used. ``now`` anchors yearless
    timestamps and is the timestamp of events that carry none.
    """
    return RecordReader(stream, fmt=fmt, limits=limits, source=source, now=now)


def parse_payload(
    body: bytes,
    content_type: str | None,
    *,
    limits: ParseLimits,
    source: str = "http",
    now: datetime | None = None,
) -> PayloadResult:
    """Parse a POST /api/logs body: one JSON object, a JSON array, or NDJSON (or text lines).

    Rejected items carry their 0-based ``index`` among the body's records.
    """
    result = PayloadResult()
    stripped = body.strip()
    if not stripped:
        return result
    sniff_binary(stripped[:_SNIFF_BYTES])
    media = (content_type or "").split(";", 1)[0].strip().lower()
    line_delimited = media in {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonlines",
        "application/x-jsonlines",
        "application/jsonl",
    }
    if not line_delimited and stripped[:1] in (b"[", b"{"):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            if stripped[:1] == b"[":
                result.rejected.append(RejectedRecord(1, f"invalid JSON: {exc}", 0))
                return result
            value = None  # several objects: NDJSON sent as application/json
        if isinstance(value, list | dict):
            items = value if isinstance(value, list) else [value]
            stamp = now or datetime.now(UTC)
            for index, item in enumerate(items):
                if not isinstance(item, dict):
                    result.rejected.append(RejectedRecord(1, "JSON array element is not an object", index))
                    continue
                try:
                    event, dropped = normalise_counted(item, source=source, limits=limits, now=stamp)
                except RecordError as exc:
                    result.rejected.append(RejectedRecord(1, exc.reason, index))
                    continue
                result.events.append(event)
                result.dropped_fields += dropped
            return result
    fmt = "ndjson" if line_delimited or stripped[:1] == b"{" else None
    for item in iter_records(io.BytesIO(body), fmt=fmt, limits=limits, source=source, now=now):
        if isinstance(item, ParsedRecord):
            result.events.append(item.event)
            result.dropped_fields += item.dropped_fields
        else:
            result.rejected.append(item)
    return result
