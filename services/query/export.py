"""Streamed CSV / NDJSON export of every event a search matches.

The export pages through the store with the search cursor (1000 events a
page), so memory stays constant however many rows match; nothing is capped,
and a client that disconnects stops the paging. CSV cells that a spreadsheet
would run as a formula (starting with ``= + - @``, tab or CR) get a leading
single quote. Large exports are gzip-compressed on the fly when the client
accepts it.
"""

from __future__ import annotations

import csv
import io
import logging
import time
import zlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from starlette.responses import StreamingResponse

from services.query.deps import SearchParams
from services.query.service import timed
from shared.metrics import QUERY_LATENCY
from shared.store.base import LogStore, SearchRequest, SearchResult

ExportFormat = Literal["csv", "ndjson"]

PAGE_SIZE: Final[int] = 1000
#: Exports with more matching rows than this are gzip-compressed when the client accepts it.
GZIP_MIN_ROWS: Final[int] = 1000
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "id",
    "timestamp",
    "level",
    "service",
    "server",
    "endpoint",
    "method",
    "status_code",
    "response_time_ms",
    "user_id",
    "tenant_id",
    "client_ip",
    "trace_id",
    "span_id",
    "source",
    "message",
    "attrs",
)
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")
_MEDIA_TYPES: Final[dict[str, str]] = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}

log = logging.getLogger(__name__)


def neutralise(cell: str) -> str:
    """Prefix a single quote to text a spreadsheet would evaluate as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def csv_cell(value: Any) -> str:
    """One CSV cell: numbers as-is, attrs as JSON, text neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return neutralise(orjson.dumps(value).decode())
    return neutralise(str(value))


def csv_rows(hits: Iterable[dict[str, Any]], *, header: bool) -> bytes:
    """CSV text of a page of hits (with the header line first when asked)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if header:
        writer.writerow(CSV_COLUMNS)
    for hit in hits:
        writer.writerow([csv_cell(hit.get(column)) for column in CSV_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def ndjson_rows(hits: Iterable[dict[str, Any]]) -> bytes:
    """One JSON object per line (the event without highlights)."""
    return b"".join(orjson.dumps({k: v for k, v in hit.items() if k != "highlight"}) + b"\n" for hit in hits)


def accepts_gzip(accept_encoding: str | None) -> bool:
    """True when ``Accept-Encoding`` allows gzip (q=0 refuses it)."""
    for part in (accept_encoding or "").split(","):
        name, _, params = part.strip().partition(";")
        if name.strip().lower() in {"gzip", "*"}:
            q = params.strip()
            return not (q.startswith("q=") and q[2:].strip() in {"0", "0.0", "0.00", "0.000"})
    return False


async def build_export(
    *, store: LogStore, params: SearchParams, fmt: ExportFormat, accept_encoding: str | None
) -> StreamingResponse:
    """A streaming response of every matching event; the first page is read before answering.

    Reading the first page up front turns a bad query or cursor into a proper
    error status instead of a truncated 200.
    """

    def request(cursor: str | None) -> SearchRequest:
        return SearchRequest(
            query=params.filter.query,
            filters=params.filter.filters,
            sort=params.sort,
            order=params.order,
            limit=PAGE_SIZE,
            cursor=cursor,
            highlight=False,
        )

    first: SearchResult = await timed("export", store.search(request(params.cursor)))
    compress = first.total > GZIP_MIN_ROWS and accepts_gzip(accept_encoding)

    async def pages() -> AsyncIterator[bytes]:
        page: SearchResult | None = first
        header = True
        rows = 0
        while page is not None:
            rows += len(page.hits)
            yield csv_rows(page.hits, header=header) if fmt == "csv" else ndjson_rows(page.hits)
            header = False
            if page.next_cursor is None:
                break
            started = time.perf_counter()
            try:
                page = await store.search(request(page.next_cursor))
            finally:
                QUERY_LATENCY.labels("export").observe(time.perf_counter() - started)
        log.info("export finished: %d rows as %s", rows, fmt)

    async def gzipped(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31 = gzip container
        async for chunk in source:
            data = compressor.compress(chunk)
            if data:
                yield data
        yield compressor.flush()

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = {
        "Content-Disposition": f'attachment; filename="logwarden-export-{stamp}.{fmt}"',
        "X-Total-Count": str(first.total),
        "Cache-Control": "no-store",
        "Vary": "Accept-Encoding",
    }
    if compress:
        headers["Content-Encoding"] = "gzip"
    body = gzipped(pages()) if compress else pages()
    return StreamingResponse(body, media_type=_MEDIA_TYPES[fmt], headers=headers)
