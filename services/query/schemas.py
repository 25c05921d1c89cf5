"""Request and response models of the query service (they document the merged OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650


class LogEventPublic(BaseModel):
    """One event in the wire shape of DESIGN.md §4 (absent fields are omitted)."""

    model_config = ConfigDict(extra="allow")

    id: str
    timestamp: str = Field(description="RFC 3339 UTC with milliseconds, e.g. 2024-05-01T12:00:00.123Z")
    level: str
    service: str | None = None
    server: str | None = None
    endpoint: str | None = None
    method: str | None = None
    status_code: int | None = None
    response_time_ms: float | None = None
    user_id: str | None = None
    tenant_id: str | None = None
    client_ip: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    message: str = ""
    source: str
    attrs: dict[str, str] = Field(default_factory=dict)


class SearchHit(LogEventPublic):
    """An event plus its highlights: field -> fragments, matches wrapped in U+0000 ... U+0001."""

    highlight: dict[str, list[str]] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    """One page of search results."""

    total: int = Field(description="Events matching the query and filters (all pages).")
    took_ms: float = Field(description="Time this request took in the query service, cache hits included.")
    hits: list[SearchHit]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class SlowEndpoint(BaseModel):
    """An endpoint among the slowest by average response time."""

    endpoint: str
    count: int
    avg_response_time_ms: float | None
    p95_response_time_ms: float | None


class TimeCount(BaseModel):
    """Errors in one histogram bucket."""

    timestamp: str
    count: int


class TimeBucket(BaseModel):
    """One histogram bucket (start time, UTC): events, errors, levels and response-time percentiles."""

    timestamp: str
    count: int
    errors: int
    levels: dict[str, int] = {}
    avg_response_time_ms: float | None = None
    p50_response_time_ms: float | None = None
    p95_response_time_ms: float | None = None
    p99_response_time_ms: float | None = None


class ServiceErrorRate(BaseModel):
    """Errors of one service."""

    service: str
    total: int
    errors: int
    error_rate: float


class TopError(BaseModel):
    """A frequent error message."""

    message: str
    count: int


class StatsPublic(BaseModel):
    """The KPIs of DESIGN.md §5 over the matching events; rates are fractions 0..1."""

    total_logs: int
    error_count: int
    error_rate: float
    server_error_rate: float
    avg_response_time_ms: float | None
    p50_response_time_ms: float | None
    p95_response_time_ms: float | None
    p99_response_time_ms: float | None
    active_users: int
    levels: dict[str, int]
    status_codes: dict[str, int]
    slowest_endpoints: list[SlowEndpoint]
    errors_over_time: list[TimeCount]
    events_over_time: list[TimeBucket]
    error_rate_by_service: list[ServiceErrorRate]
    top_errors: list[TopError]
    interval_ms: int = Field(description="Histogram bucket width actually used (ms).")


class SuggestPublic(BaseModel):
    """Autocomplete values of a field, most frequent first."""

    values: list[str]


class SavedSearchCreate(BaseModel):
    """A search to keep under a name."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    query: str = Field("", max_length=4096)
    filters: dict[str, Any] = Field(default_factory=dict)


class SavedSearchPublic(BaseModel):
    """A saved search of the caller."""

    id: str
    name: str
    query: str
    filters: dict[str, Any]
    created_at: datetime


class SavedSearchList(BaseModel):
    """The caller's saved searches, newest first."""

    saved_searches: list[SavedSearchPublic]


class SearchHistoryPublic(BaseModel):
    """One search the caller ran."""

    id: str
    query: str
    filters: dict[str, Any]
    results_count: int
    timestamp: datetime


class SearchHistoryList(BaseModel):
    """The caller's recent searches, newest first."""

    history: list[SearchHistoryPublic]


class HistoryCleared(BaseModel):
    """How many history entries were removed."""

    deleted: int


class PopularSearch(BaseModel):
    """A query and how often it was run."""

    query: str
    count: int


class PopularSearchList(BaseModel):
    """Most frequent recent queries."""

    searches: list[PopularSearch]


class RetentionPublic(BaseModel):
    """How long events are kept."""

    retention_days: int


class RetentionUpdate(BaseModel):
    """New retention period."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(ge=MIN_RETENTION_DAYS, le=MAX_RETENTION_DAYS)


class SourceDeleted(BaseModel):
    """Events removed for one source."""

    deleted: int
