"""The ingest use cases behind the routes: accept events, manage files, demo data.

Functions take keyword-only arguments and the clients they need, so the routes,
the TCP/syslog servers, the tests and the benchmark all run the same code.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Final

import httpx

from services.ingest.parsing import NotALogError, ParseLimits, RejectedRecord, parse_payload
from services.ingest.publish import Publisher, PublishError
from services.ingest.schemas import DemoDataCreate, DemoDataPublic, FilePublic, FilesPublic, LogsPublic
from services.ingest.threads import ThreadFeed
from shared.errors import ApiError
from shared.internal import TOKEN_HEADER, Principal
from shared.metrics import REJECTED_EVENTS
from shared.models import LogEvent
from shared.settings import Settings
from shared.store.base import MetaStore
from shared.store.records import FileRecord

log = logging.getLogger(__name__)

TENANT_MISMATCH: Final = "tenant_id does not match the API key"
MAX_REPORTED_INDEX_ERRORS: Final = 100
DEMO_SOURCE: Final = "demo"

# Reasons are free text for people; the metric label must stay a small fixed set.
_REASON_LABELS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (re.compile(r"^tenant_id does not match"), "tenant"),
    (re.compile(r"^line longer than|larger than|too large"), "too_large"),
    (re.compile(r"nesting deeper"), "too_deep"),
    (re.compile(r"^invalid JSON|unterminated JSON|not an object|JSON array element"), "invalid_json"),
    (re.compile(r"^CSV"), "invalid_csv"),
    (re.compile(r"^timestamp"), "bad_timestamp"),
    (
        re.compile(
            r"^(status_code|response_time_ms|method|service|server|endpoint|user_id|tenant_id|client_ip|"
            r"trace_id|span_id)\b"
        ),
        "bad_field",
    ),
    (re.compile(r"not supported"), "unsupported"),
    (re.compile(r"^backpressure"), "backpressure"),
)


def reason_label(reason: str) -> str:
    """The low-cardinality ``reason`` label of REJECTED_EVENTS for a rejection reason."""
    for pattern, label in _REASON_LABELS:
        if pattern.search(reason):
            return label
    return "invalid"


def count_rejections(input_name: str, reasons: Iterable[str]) -> int:
    """Add rejections to REJECTED_EVENTS{input, reason}; returns how many."""
    counts = Counter(reason_label(r) for r in reasons)
    for label, n in counts.items():
        REJECTED_EVENTS.labels(input_name, label).inc(n)
    return sum(counts.values())


def apply_tenant(event: LogEvent, tenant_id: str | None) -> str | None:
    """The tenant rule for one event: stamp it, or return the rejection reason.

    A tenant-restricted caller (an API key with ``tenant_id``) can only write
    its own tenant: events without ``tenant_id`` get it, events naming another
    tenant are rejected. Unrestricted callers' events are left as they are.
    """
    if tenant_id is None:
        return None
    if event.tenant_id is None:
        event.tenant_id = tenant_id
        return None
    if event.tenant_id != tenant_id:
        return TENANT_MISMATCH
    return None


def parse_limits(settings: Settings) -> ParseLimits:
    """The parsing limits from settings."""
    return ParseLimits.from_settings(settings)


# ------------------------------------------------------------------------------ POST /api/logs


def _parse_logs_body(
    body: bytes, content_type: str | None, *, limits: ParseLimits, tenant_id: str | None
) -> tuple[list[LogEvent], list[RejectedRecord], str]:
    result = parse_payload(body, content_type, limits=limits, source="http")
    events: list[LogEvent] = []
    rejected = list(result.rejected)
    # parse_payload numbers accepted and rejected items together; recover each event's index.
    rejected_indexes = {r.index for r in rejected}
    index = 0
    for event in result.events:
        while index in rejected_indexes:
            index += 1
        reason = apply_tenant(event, tenant_id)
        if reason is None:
            events.append(event)
        else:
            rejected.append(RejectedRecord(0, reason, index))
        index += 1
    rejected.sort(key=lambda r: r.index)
    stripped = body.lstrip()[:1]
    fmt = "json" if stripped in (b"{", b"[") else "ndjson"
    return events, rejected, fmt


async def accept_logs(
    *, body: bytes, content_type: str | None, principal: Principal, settings: Settings, publisher: Publisher
) -> LogsPublic:
    """Parse a ``POST /api/logs`` body (object, array or NDJSON), apply the tenant rule, publish."""
    try:
        events, rejected, fmt = await asyncio.to_thread(
            _parse_logs_body, body, content_type, limits=parse_limits(settings), tenant_id=principal.tenant_id
        )
    except NotALogError as exc:
        raise ApiError(400, f"the body is not a log payload: {exc.reason}") from None
    count_rejections("http", (r.reason for r in rejected))
    try:
        await publisher.publish(events, input_name="http", fmt=fmt)
    except PublishError as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    errors = [{"index": r.index, "reason": r.reason} for r in rejected[:MAX_REPORTED_INDEX_ERRORS]]
    return LogsPublic.model_validate({"accepted": len(events), "rejected": len(rejected), "errors": errors})


# ------------------------------------------------------------------------------ files


def _visible(record: FileRecord | None, principal: Principal) -> FileRecord | None:
    # Another tenant's file is "not found", never "forbidden": its existence is not disclosed.
    if record is None:
        return None
    if principal.tenant_id is not None and record.tenant_id != principal.tenant_id:
        return None
    return record


async def list_files(*, meta: MetaStore, principal: Principal, limit: int = 1000) -> FilesPublic:
    """The caller's files (a tenant-restricted caller sees its tenant's only) and their totals."""
    records, totals = await asyncio.gather(
        meta.list_files(tenant_id=principal.tenant_id, limit=limit),
        meta.file_totals(tenant_id=principal.tenant_id),
    )
    return FilesPublic.model_validate({"files": [FilePublic.from_record(r) for r in records], "stats": totals})


async def get_file(*, meta: MetaStore, principal: Principal, file_id: str) -> FilePublic:
    """One file, or 404."""
    record = _visible(await meta.get_file(file_id), principal)
    if record is None:
        raise ApiError(404, "file not found")
    return FilePublic.from_record(record)


async def delete_source_events(*, http: httpx.AsyncClient, settings: Settings, source: str) -> int | None:
    """Ask the query service to delete every event of ``source``; returns how many (None if not said).

    Raises ApiError(503) when the query service cannot do it now, so the caller
    keeps its record and the delete can be retried.
    """
    url = f"{settings.service_url('query')}/internal/sources/{source}"
    try:
        response = await http.delete(url, headers={TOKEN_HEADER: settings.internal_token.get_secret_value()})
    except httpx.HTTPError as exc:
        log.warning("query service unreachable while deleting %s: %s", source, type(exc).__name__)
        raise ApiError(
            503,
            "the query service is unavailable: the file was kept, retry the delete later",
            headers={"Retry-After": "10"},
        ) from None
    if response.status_code == 404:
        return 0  # nothing indexed under that source
    if response.status_code >= 300:
        log.warning("query service refused deleting %s: HTTP %s", source, response.status_code)
        raise ApiError(
            503,
            "the query service could not delete the file's events: the file was kept, retry later",
            headers={"Retry-After": "10"},
        )
    with contextlib.suppress(ValueError):
        deleted = response.json().get("deleted")
        if isinstance(deleted, int):
            return deleted
    return None


def remove_stored_file(path: str | None, *, uploads_dir: Path) -> None:
    """Delete an uploaded file from disk (only inside the uploads directory)."""
    if not path:
        return
    target = Path(path)
    if target.resolve().parent != uploads_dir.resolve():
        log.warning("not deleting %s: outside %s", target, uploads_dir)
        return
    target.unlink(missing_ok=True)


# ------------------------------------------------------------------------------ demo data


def _demo_batches(count: int, days: float, seed: int | None, batch_size: int) -> Iterator[list[LogEvent]]:
    from shared.generator import generate_events

    batch: list[LogEvent] = []
    for event in generate_events(count=count, days=days, seed=seed):
        event.source = DEMO_SOURCE
        batch.append(event)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


async def create_demo_data(*, data: DemoDataCreate, publisher: Publisher) -> DemoDataPublic:
    """Generate events in a worker thread and publish them with source ``demo``."""
    feed: ThreadFeed[list[LogEvent]] = ThreadFeed(
        lambda: _demo_batches(data.count, data.days, data.seed, publisher.batch_size)
    )
    published = 0
    try:
        while True:
            more, batch = await feed.get()
            if not more or batch is None:
                break
            await publisher.publish(batch, input_name="demo", fmt="generated")
            published += len(batch)
    except PublishError as exc:
        raise ApiError(503, str(exc), headers={"Retry-After": "5"}) from None
    finally:
        await feed.close()
    return DemoDataPublic(published=published, source=DEMO_SOURCE)
