"""What the query routes do: search, get, stats, suggest, saved searches, history, settings.

Every function is keyword-only and takes its collaborators explicitly, so the
router stays a thin HTTP layer and the functions are easy to call from tests.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any, Final

import orjson

from services.query.cache import QueryCache, bump_generation
from services.query.deps import FilterParams, SearchParams, parse_query
from services.query.indexer import RETENTION_SETTING, Indexer, effective_retention_days, tombstone_source
from shared.errors import ApiError
from shared.internal import Principal
from shared.metrics import QUERY_LATENCY
from shared.models import KEYWORD_FIELDS, epoch_ms, from_epoch_ms
from shared.querylang import resolve_time
from shared.querylang.ast import MatchAll, Node, Prefix
from shared.settings import Settings
from shared.store.base import (
    Filters,
    LogStore,
    MetaStore,
    SearchRequest,
    SearchResult,
    SortOrder,
    StatsRequest,
)
from shared.store.records import SavedSearchRecord, SearchHistoryRecord

log = logging.getLogger(__name__)

SUGGEST_FIELDS: Final[tuple[str, ...]] = ("endpoint", "service", "server", "tenant_id", "level")
#: Tenant-restricted suggestions are drawn from this many of the tenant's latest matching events.
TENANT_SUGGEST_SAMPLE: Final[int] = 1000
#: Histogram widths the automatic interval picks from (ms).
NICE_INTERVALS_MS: Final[tuple[int, ...]] = (
    1_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    604_800_000,
    2_592_000_000,
)
TARGET_BUCKETS: Final[int] = 60
DEFAULT_SPAN_MS: Final[int] = 86_400_000
MAX_INTERVAL_MS: Final[int] = 366 * 86_400_000
_INTERVAL_RE: Final = re.compile(r"([0-9]+)\s*(ms|s|m|h|d|w)?", re.IGNORECASE)
_UNIT_MS: Final[dict[str, int]] = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


async def timed(kind: str, coro: Any) -> Any:
    """Await a store call, observing QUERY_LATENCY{kind}; ValueError from the store is a bad request."""
    started = time.perf_counter()
    try:
        return await coro
    except ValueError as exc:
        # The stores raise ValueError only for bad input (cursor, range too wide, ...).
        raise ApiError(400, str(exc)) from None
    finally:
        QUERY_LATENCY.labels(kind).observe(time.perf_counter() - started)


def _result_dict(result: SearchResult) -> dict[str, Any]:
    return {"total": result.total, "hits": result.hits, "next_cursor": result.next_cursor}


async def search_events(
    *,
    store: LogStore,
    cache: QueryCache,
    meta: MetaStore,
    settings: Settings,
    principal: Principal,
    params: SearchParams,
) -> dict[str, Any]:
    """One page of matching events (cached), recording the search in the user's history."""
    started = time.perf_counter()
    material = {
        **params.filter.cache_material(settings.search_cache_seconds),
        "sort": params.sort,
        "order": params.order,
        "limit": params.limit,
        "cursor": params.cursor,
        "caller_tenant": principal.tenant_id,
    }
    request = SearchRequest(
        query=params.filter.query,
        filters=params.filter.filters,
        sort=params.sort,
        order=params.order,
        limit=params.limit,
        cursor=params.cursor,
    )

    async def compute() -> dict[str, Any]:
        return _result_dict(await timed("search", store.search(request)))

    answer, _ = await cache.get_or_compute("search", material, compute)
    await record_search(meta=meta, principal=principal, params=params, results_count=int(answer["total"]))
    return {**answer, "took_ms": round((time.perf_counter() - started) * 1000, 3)}


async def record_search(*, meta: MetaStore, principal: Principal, params: SearchParams, results_count: int) -> None:
    """Add a search to a user's history: users only, first pages only, not the empty search."""
    if principal.kind != "user" or params.cursor is not None:
        return
    if not params.filter.text.strip() and not params.filter.applied:
        return  # opening the search page lists everything: not a search anyone ran
    try:
        await meta.add_search_history(
            SearchHistoryRecord(
                user_id=principal.id,
                query=params.filter.text.strip(),
                filters=params.filter.applied,
                results_count=results_count,
            )
        )
    except Exception:  # history is a convenience: never fail the search for it
        log.exception("could not record search history")


async def get_event(*, store: LogStore, principal: Principal, event_id: str) -> dict[str, Any]:
    """One event; 404 when missing or outside the caller's tenant (no existence leak)."""
    event = await timed("get", store.get(event_id))
    if event is None or (principal.tenant_id is not None and event.tenant_id != principal.tenant_id):
        raise ApiError(404, "no such event")
    data: dict[str, Any] = event.to_dict()
    return data


def parse_interval(value: str) -> int:
    """``"5m"``, ``"1h"``, ``"500ms"`` or plain milliseconds -> ms; 400 when invalid."""
    match = _INTERVAL_RE.fullmatch(value.strip())
    if not match:
        raise ApiError(400, f"invalid interval {value!r}: use e.g. 30s, 5m, 1h, 1d or milliseconds")
    unit = (match.group(2) or "ms").lower()
    interval = int(match.group(1)) * _UNIT_MS[unit]
    if not 1 <= interval <= MAX_INTERVAL_MS:
        raise ApiError(400, f"interval must be between 1 ms and {MAX_INTERVAL_MS // 86_400_000} days")
    return interval


def choose_interval(span_ms: int | None) -> int:
    """The smallest nice width giving at most ~60 buckets over ``span_ms`` (24 h when unknown)."""
    span = span_ms if span_ms and span_ms > 0 else DEFAULT_SPAN_MS
    target = math.ceil(span / TARGET_BUCKETS)
    for interval in NICE_INTERVALS_MS:
        if interval >= target:
            return interval
    return NICE_INTERVALS_MS[-1]


async def _data_edge(store: LogStore, node: Node, filters: Filters, order: SortOrder) -> datetime | None:
    request = SearchRequest(query=node, filters=filters, sort="timestamp", order=order, limit=1, highlight=False)
    result = await timed("stats", store.search(request))
    if not result.hits:
        return None
    return resolve_time(str(result.hits[0]["timestamp"]))


async def auto_interval(*, store: LogStore, params: FilterParams) -> tuple[int, Filters]:
    """Interval for ~60 buckets over [from, to); a missing end is the matching data's edge.

    Also returns the filters with those edges filled in: the same events match,
    and the store then sizes its histogram to the data instead of whole days.
    """
    f = params.filters
    start = f.time_from or await _data_edge(store, params.query, f, "asc")
    end = f.time_to
    if end is None and start is not None:
        latest = await _data_edge(store, params.query, f, "desc")
        end = None if latest is None else from_epoch_ms(epoch_ms(latest) + 1)
    if start is None or end is None:
        return choose_interval(None), f
    return choose_interval(epoch_ms(end) - epoch_ms(start)), replace(f, time_from=start, time_to=end)


async def compute_stats(
    *,
    store: LogStore,
    cache: QueryCache,
    settings: Settings,
    principal: Principal,
    params: FilterParams,
    interval: str | None,
) -> dict[str, Any]:
    """The KPI document of DESIGN.md §5 for the matching events (cached)."""
    interval_ms = parse_interval(interval) if interval else None
    material = {
        **params.cache_material(settings.stats_cache_seconds),
        "interval_ms": interval_ms,
        "caller_tenant": principal.tenant_id,
    }

    async def compute() -> dict[str, Any]:
        filters = params.filters
        if interval_ms is None:
            chosen, filters = await auto_interval(store=store, params=params)
        else:
            chosen = interval_ms
        request = StatsRequest(query=params.query, filters=filters, interval_ms=chosen)
        result: dict[str, Any] = await timed("stats", store.stats(request))
        return result

    answer, _ = await cache.get_or_compute("stats", material, compute)
    return answer


async def suggest_values(*, store: LogStore, principal: Principal, field: str, prefix: str, limit: int) -> list[str]:
    """Autocomplete values of a keyword field, restricted to the caller's tenant."""
    if field not in SUGGEST_FIELDS:
        raise ApiError(404, f"no suggestions for {field!r}", details={"fields": list(SUGGEST_FIELDS)})
    assert field in KEYWORD_FIELDS
    if field == "level":
        prefix = prefix.upper()  # levels are stored upper-case
    tenant = principal.tenant_id
    if tenant is None:
        values: list[str] = await timed("suggest", store.distinct_values(field, prefix=prefix, limit=limit))
        return values
    if field == "tenant_id":
        return [tenant] if tenant.startswith(prefix) else []
    # The stores' term walk cannot be filtered by tenant: sample the tenant's latest
    # matching events instead (correct, possibly incomplete for rare values).
    request = SearchRequest(
        query=Prefix(field, prefix) if prefix else MatchAll(),
        filters=Filters(tenant_ids=(tenant,)),
        limit=TENANT_SUGGEST_SAMPLE,
        highlight=False,
    )
    result = await timed("suggest", store.search(request))
    counts = Counter(str(hit[field]) for hit in result.hits if hit.get(field) is not None)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [value for value, _ in ranked[:limit]]


# --- saved searches, history, popular ----------------------------------------------------------


def _require_user(principal: Principal) -> None:
    if principal.kind != "user":
        raise ApiError(403, "saved searches belong to users; API keys have none")


async def list_saved_searches(*, meta: MetaStore, principal: Principal) -> list[SavedSearchRecord]:
    """The caller's saved searches, newest first."""
    _require_user(principal)
    return await meta.list_saved_searches(principal.id)


async def create_saved_search(
    *, meta: MetaStore, settings: Settings, principal: Principal, name: str, query: str, filters: dict[str, Any]
) -> SavedSearchRecord:
    """Keep a search under a name (the query must parse)."""
    _require_user(principal)
    parse_query(query, settings)
    return await meta.create_saved_search(
        SavedSearchRecord(user_id=principal.id, name=name.strip(), query=query, filters=filters)
    )


async def delete_saved_search(*, meta: MetaStore, principal: Principal, search_id: str) -> None:
    """Delete one of the caller's saved searches; 404 for anyone else's."""
    _require_user(principal)
    if not await meta.delete_saved_search(principal.id, search_id):
        raise ApiError(404, "no such saved search")


async def list_search_history(*, meta: MetaStore, principal: Principal, limit: int) -> list[SearchHistoryRecord]:
    """The caller's recent searches, newest first, each distinct search once (its latest run)."""
    # Re-running or re-sorting a search records it again; a history list shows it once.
    seen: set[bytes] = set()
    distinct: list[SearchHistoryRecord] = []
    for record in await meta.list_search_history(principal.id, limit=limit * 4):
        key = orjson.dumps([record.query, record.filters], option=orjson.OPT_SORT_KEYS)
        if key not in seen:
            seen.add(key)
            distinct.append(record)
        if len(distinct) == limit:
            break
    return distinct


async def clear_search_history(*, meta: MetaStore, principal: Principal) -> int:
    """Forget the caller's searches."""
    return await meta.clear_search_history(principal.id)


async def list_popular_searches(*, meta: MetaStore, principal: Principal, limit: int) -> list[dict[str, Any]]:
    """Most frequent queries: everyone's, or only the caller's own for a tenant-restricted caller.

    Other users' queries may name other tenants' data, so a tenant-restricted
    caller never sees them.
    """
    if principal.tenant_id is None:
        return await meta.popular_searches(limit=limit)
    history = await meta.list_search_history(principal.id, limit=100)
    counts = Counter(h.query.strip() for h in history if h.query.strip())
    return [{"query": q, "count": n} for q, n in sorted(counts.items(), key=lambda i: (-i[1], i[0]))[:limit]]


# --- settings and internal ------------------------------------------------------------------------


async def get_retention(*, meta: MetaStore, settings: Settings) -> int:
    """Days events are kept."""
    return await effective_retention_days(meta=meta, settings=settings)


async def set_retention(*, meta: MetaStore, indexer: Indexer, principal: Principal, days: int) -> int:
    """Store a new retention period (admins) and apply it right away."""
    if not principal.is_admin:
        raise ApiError(403, "only admins may change retention")
    await meta.set_setting(RETENTION_SETTING, days)
    indexer.request_retention()
    return days


async def delete_source(*, store: LogStore, redis: Any, source: str) -> int:
    """Delete every event of ``source`` (a deleted upload) and invalidate cached answers."""
    if not source.strip():
        raise ApiError(400, "source must not be empty")
    # Tombstone first, so a batch of this file still in the stream is not indexed afterwards.
    await tombstone_source(redis, source)
    deleted = await timed("delete", store.delete_by_source(source))
    await bump_generation(redis)
    return int(deleted)
