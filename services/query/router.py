"""HTTP routes of the query service: public (proxied by the gateway) and internal."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query
from starlette.responses import Response, StreamingResponse

from services.query import service
from services.query.deps import (
    CacheDep,
    FilterParamsDep,
    IndexerDep,
    MetaDep,
    PrincipalDep,
    RedisDep,
    SearchParamsDep,
    SettingsDep,
    StoreDep,
)
from services.query.export import ExportFormat, build_export
from services.query.schemas import (
    HistoryCleared,
    LogEventPublic,
    PopularSearchList,
    RetentionPublic,
    RetentionUpdate,
    SavedSearchCreate,
    SavedSearchList,
    SavedSearchPublic,
    SearchHistoryList,
    SearchHistoryPublic,
    SearchResponse,
    SourceDeleted,
    StatsPublic,
    SuggestPublic,
)

router = APIRouter(tags=["query"])
internal_router = APIRouter(include_in_schema=False)

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Bad query (with the position), filter, time or cursor"},
    403: {"description": "Outside the caller's tenant or role"},
}


def json_response(body: Any, status_code: int = 200) -> Response:
    """Serialise with orjson: hits pages are large, and the store already gives wire-shape dicts."""
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


@router.get("/api/search", response_model=SearchResponse, responses=ERRORS, summary="Search events")
@router.get("/api/logs", response_model=SearchResponse, responses=ERRORS, summary="Search events (alias)")
async def search(
    store: StoreDep,
    cache: CacheDep,
    meta: MetaDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    params: SearchParamsDep,
) -> Response:
    """Full-text search with filters, sorted, one page at a time (follow ``next_cursor``).

    ``GET /api/logs`` is the same route (DESIGN.md §5).
    """
    body = await service.search_events(
        store=store, cache=cache, meta=meta, settings=settings, principal=principal, params=params
    )
    return json_response(body)


@router.get("/api/logs/{event_id}", response_model=LogEventPublic, responses={404: {"description": "No such event"}})
async def get_log(
    store: StoreDep, principal: PrincipalDep, event_id: Annotated[str, Path(min_length=1, max_length=64)]
) -> Response:
    """One event by id."""
    return json_response(await service.get_event(store=store, principal=principal, event_id=event_id))


@router.get("/api/stats", response_model=StatsPublic, responses=ERRORS, summary="KPIs and histograms")
async def stats(
    store: StoreDep,
    cache: CacheDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    params: FilterParamsDep,
    interval: Annotated[
        str | None,
        Query(
            max_length=32,
            description="Histogram bucket width: 30s, 5m, 1h, 1d or ms. Default: ~60 buckets over [from, to), "
            "a missing end being the first/last matching event (24 h when nothing matches).",
        ),
    ] = None,
) -> Response:
    """Every KPI of DESIGN.md §5 over the events matching the query and filters."""
    body = await service.compute_stats(
        store=store, cache=cache, settings=settings, principal=principal, params=params, interval=interval
    )
    return json_response(body)


@router.get(
    "/api/export",
    response_class=StreamingResponse,
    responses={
        **ERRORS,
        200: {
            "description": "Every matching event, streamed (gzip when large and accepted)",
            "content": {"text/csv": {}, "application/x-ndjson": {}},
        },
    },
)
async def export(
    store: StoreDep,
    params: SearchParamsDep,
    format: Annotated[ExportFormat, Query(description="csv or ndjson")] = "csv",
    accept_encoding: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Download every matching event as CSV (formula-safe) or NDJSON; ``limit`` is ignored."""
    return await build_export(store=store, params=params, fmt=format, accept_encoding=accept_encoding)


@router.get("/api/suggest/{field}", response_model=SuggestPublic, responses={404: {"description": "Unknown field"}})
async def suggest(
    store: StoreDep,
    principal: PrincipalDep,
    field: str,
    prefix: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SuggestPublic:
    """Autocomplete for endpoint, service, server, tenant_id and level."""
    values = await service.suggest_values(store=store, principal=principal, field=field, prefix=prefix, limit=limit)
    return SuggestPublic(values=values)


@router.get("/api/saved-searches", response_model=SavedSearchList)
async def list_saved_searches(meta: MetaDep, principal: PrincipalDep) -> SavedSearchList:
    """The caller's saved searches, newest first."""
    records = await service.list_saved_searches(meta=meta, principal=principal)
    return SavedSearchList(saved_searches=[SavedSearchPublic.model_validate(r.model_dump()) for r in records])


@router.post("/api/saved-searches", response_model=SavedSearchPublic, status_code=201, responses=ERRORS)
async def create_saved_search(
    meta: MetaDep, settings: SettingsDep, principal: PrincipalDep, body: SavedSearchCreate
) -> SavedSearchPublic:
    """Save a search (query text and filters) under a name."""
    record = await service.create_saved_search(
        meta=meta, settings=settings, principal=principal, name=body.name, query=body.query, filters=body.filters
    )
    return SavedSearchPublic.model_validate(record.model_dump())


@router.delete("/api/saved-searches/{search_id}", status_code=204, responses={404: {"description": "Not yours"}})
async def delete_saved_search(meta: MetaDep, principal: PrincipalDep, search_id: str) -> Response:
    """Delete one of the caller's saved searches."""
    await service.delete_saved_search(meta=meta, principal=principal, search_id=search_id)
    return Response(status_code=204)


@router.get("/api/search-history", response_model=SearchHistoryList)
async def list_search_history(
    meta: MetaDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=100)] = 50
) -> SearchHistoryList:
    """The caller's recent searches, newest first."""
    records = await service.list_search_history(meta=meta, principal=principal, limit=limit)
    return SearchHistoryList(history=[SearchHistoryPublic.model_validate(r.model_dump()) for r in records])


@router.delete("/api/search-history", response_model=HistoryCleared)
async def clear_search_history(meta: MetaDep, principal: PrincipalDep) -> HistoryCleared:
    """Forget the caller's searches."""
    return HistoryCleared(deleted=await service.clear_search_history(meta=meta, principal=principal))


@router.get("/api/popular-searches", response_model=PopularSearchList)
async def popular_searches(
    meta: MetaDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=50)] = 10
) -> PopularSearchList:
    """Most frequent recent queries."""
    searches = await service.list_popular_searches(meta=meta, principal=principal, limit=limit)
    return PopularSearchList.model_validate({"searches": searches})


@router.get("/api/settings/retention", response_model=RetentionPublic)
async def get_retention(meta: MetaDep, settings: SettingsDep, principal: PrincipalDep) -> RetentionPublic:
    """How many days events are kept."""
    del principal  # any authenticated caller may read it
    return RetentionPublic(retention_days=await service.get_retention(meta=meta, settings=settings))


@router.put("/api/settings/retention", response_model=RetentionPublic, responses=ERRORS)
async def put_retention(
    meta: MetaDep, indexer: IndexerDep, principal: PrincipalDep, body: RetentionUpdate
) -> RetentionPublic:
    """Change how many days events are kept (admin); older events are deleted right away."""
    days = await service.set_retention(meta=meta, indexer=indexer, principal=principal, days=body.retention_days)
    return RetentionPublic(retention_days=days)


@internal_router.delete("/internal/sources/{source}", response_model=SourceDeleted)
async def delete_source(store: StoreDep, redis: RedisDep, source: str) -> SourceDeleted:
    """Delete every event of a source (ingest calls this when a file is deleted)."""
    return SourceDeleted(deleted=await service.delete_source(store=store, redis=redis, source=source))
