"""FastAPI dependencies of the query service, as ``Annotated`` aliases.

Request parameters shared by search, stats and export are parsed and validated
here once, including the tenant rule: a tenant-restricted caller (an API key
with ``tenant_id``) always gets its tenant as a filter, and naming another
tenant in the ``tenant_id`` filter is refused with 403.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request

from services.query.cache import QueryCache
from services.query.indexer import Indexer
from shared.deps import ForwardedPrincipal, MetaStoreDep, SettingsDep
from shared.deps import RedisDep as RedisDep  # re-exported for the routers
from shared.errors import ApiError
from shared.models import LEVELS
from shared.querylang import Node, QuerySyntaxError, parse, resolve_time
from shared.querylang.parser import LEVEL_ALIASES
from shared.settings import Settings
from shared.store import kpi
from shared.store.base import Filters, LogStore

MAX_FILTER_VALUES = 100
MAX_PAGE = 1000


def get_store(request: Request) -> LogStore:
    """The LogStore opened by the lifespan."""
    store: LogStore = request.app.state.store
    return store


def get_cache(request: Request) -> QueryCache:
    """The query cache."""
    cache: QueryCache = request.app.state.cache
    return cache


def get_indexer(request: Request) -> Indexer:
    """The running indexer."""
    indexer: Indexer = request.app.state.indexer
    return indexer


StoreDep = Annotated[LogStore, Depends(get_store)]
MetaDep = MetaStoreDep
CacheDep = Annotated[QueryCache, Depends(get_cache)]
IndexerDep = Annotated[Indexer, Depends(get_indexer)]
PrincipalDep = ForwardedPrincipal


@dataclass(frozen=True, slots=True)
class FilterParams:
    """Validated query text and filters of a search, stats or export request."""

    text: str
    query: Node
    filters: Filters
    applied: dict[str, Any]  # the filters as the user gave them (history, saved searches)
    raw_from: str | None = None
    raw_to: str | None = None

    def cache_material(self, ttl_seconds: int) -> dict[str, Any]:
        """A normalised, JSON-able description of what is asked (cache keys).

        Relative times (``now-24h``) resolve to a new instant on every request;
        keyed as written plus the current TTL window, so a dashboard refreshing
        ``now-24h`` can hit the cache (its window lags by at most one TTL).
        """
        f = self.filters
        window = int(time.time() // max(ttl_seconds, 1))

        def when(raw: str | None, value: datetime | None) -> Any:
            if raw is not None and raw.strip().lower().startswith("now"):
                return {"relative": raw.strip().lower(), "window": window}
            return value.isoformat() if value else None

        return {
            "q": self.text.strip(),
            "level": sorted(f.levels),
            "service": sorted(f.services),
            "server": sorted(f.servers),
            "endpoint": sorted(f.endpoints),
            "tenant_id": sorted(f.tenant_ids),
            "status_code": sorted(f.status_codes),
            "source": sorted(f.sources),
            "from": when(self.raw_from, f.time_from),
            "to": when(self.raw_to, f.time_to),
        }


@dataclass(frozen=True, slots=True)
class SearchParams:
    """Filters plus sort and page."""

    filter: FilterParams
    sort: Literal["timestamp", "response_time_ms", "status_code"]
    order: Literal["asc", "desc"]
    limit: int
    cursor: str | None


def _values(name: str, raw: list[str] | None) -> tuple[str, ...]:
    values = tuple(v.strip() for v in raw or [] if v.strip())
    if len(values) > MAX_FILTER_VALUES:
        raise ApiError(400, f"at most {MAX_FILTER_VALUES} values for {name!r}", details={"parameter": name})
    return tuple(dict.fromkeys(values))


def _levels(raw: list[str] | None) -> tuple[str, ...]:
    out = []
    for value in _values("level", raw):
        level = LEVEL_ALIASES.get(value.lower())
        if level is None:
            raise ApiError(400, f"unknown level {value!r}", details={"parameter": "level", "expected": list(LEVELS)})
        out.append(level)
    return tuple(dict.fromkeys(out))


def _status_codes(raw: list[str] | None) -> tuple[str, ...]:
    out = []
    for value in _values("status_code", raw):
        try:
            kpi.status_code_bounds(value)
        except ValueError as exc:
            raise ApiError(400, str(exc), details={"parameter": "status_code"}) from None
        out.append(value.lower())
    return tuple(dict.fromkeys(out))


def _time(name: str, value: str | None) -> datetime | None:
    if value is None or not value.strip():
        return None
    try:
        return resolve_time(value)
    except ValueError as exc:
        raise ApiError(400, str(exc), details={"parameter": name}) from None


def parse_query(text: str, settings: Settings) -> Node:
    """Parse ``q``; a syntax error becomes a 400 naming the position."""
    try:
        return parse(
            text,
            max_length=settings.max_query_length,
            max_terms=settings.max_query_terms,
            max_depth=settings.max_query_depth,
        )
    except QuerySyntaxError as exc:
        raise ApiError(400, f"invalid query: {exc.message}", code="invalid_query", details=exc.to_dict()) from None


def filter_params(
    settings: SettingsDep,
    principal: PrincipalDep,
    q: Annotated[str, Query(description="Query language (DESIGN.md §6).", max_length=65536)] = "",
    level: Annotated[list[str] | None, Query(description="DEBUG, INFO, WARNING, ERROR, CRITICAL")] = None,
    service: Annotated[list[str] | None, Query()] = None,
    server: Annotated[list[str] | None, Query()] = None,
    endpoint: Annotated[list[str] | None, Query()] = None,
    tenant_id: Annotated[list[str] | None, Query()] = None,
    status_code: Annotated[list[str] | None, Query(description="Exact (404) or class (2xx, 4xx, 5xx).")] = None,
    source: Annotated[list[str] | None, Query(description="upload:<file id>, http, bulk, otlp, tcp, syslog")] = None,
    time_from: Annotated[
        str | None, Query(alias="from", description="Inclusive; ISO 8601, epoch ms or now-15m.")
    ] = None,
    time_to: Annotated[str | None, Query(alias="to", description="Exclusive; ISO 8601, epoch ms or now.")] = None,
) -> FilterParams:
    """Validate the query text and filters, enforcing the caller's tenant."""
    node = parse_query(q, settings)
    tenants = _values("tenant_id", tenant_id)
    if principal.tenant_id is not None:
        others = [t for t in tenants if t != principal.tenant_id]
        if others:
            raise ApiError(403, "this key may only read its own tenant's events", details={"parameter": "tenant_id"})
        tenants = (principal.tenant_id,)
    start, end = _time("from", time_from), _time("to", time_to)
    if start is not None and end is not None and start > end:
        raise ApiError(400, "'from' must not be after 'to'", details={"parameter": "from"})
    filters = Filters(
        levels=_levels(level),
        services=_values("service", service),
        servers=_values("server", server),
        endpoints=_values("endpoint", endpoint),
        tenant_ids=tenants,
        status_codes=_status_codes(status_code),
        sources=_values("source", source),
        time_from=start,
        time_to=end,
    )
    applied: dict[str, Any] = {
        name: list(values)
        for name, values in (
            ("level", filters.levels),
            ("service", filters.services),
            ("server", filters.servers),
            ("endpoint", filters.endpoints),
            ("tenant_id", _values("tenant_id", tenant_id)),
            ("status_code", filters.status_codes),
            ("source", filters.sources),
        )
        if values
    }
    if time_from:
        applied["from"] = time_from
    if time_to:
        applied["to"] = time_to
    return FilterParams(text=q, query=node, filters=filters, applied=applied, raw_from=time_from, raw_to=time_to)


FilterParamsDep = Annotated[FilterParams, Depends(filter_params)]


def search_params(
    params: FilterParamsDep,
    sort: Annotated[Literal["timestamp", "response_time_ms", "status_code"], Query()] = "timestamp",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=4096, description="next_cursor of the previous page")] = None,
) -> SearchParams:
    """Filters plus sort, order, page size and cursor."""
    return SearchParams(filter=params, sort=sort, order=order, limit=limit, cursor=cursor or None)


SearchParamsDep = Annotated[SearchParams, Depends(search_params)]
