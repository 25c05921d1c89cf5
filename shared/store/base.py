"""Store interfaces: the LogStore (events) and the MetaStore (everything else).

Each interface has one conformance suite in ``tests/conformance/`` that every
backend passes. Implementations live side by side in this package.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from shared.health import CheckResult
from shared.models import LogEvent
from shared.querylang.ast import MatchAll, Node
from shared.store.records import (
    ApiKeyRecord,
    FileRecord,
    SavedSearchRecord,
    SearchHistoryRecord,
    UserRecord,
)

SortField = Literal["timestamp", "response_time_ms", "status_code"]
SortOrder = Literal["asc", "desc"]


@dataclass(frozen=True, slots=True)
class Filters:
    """Structured filters ANDed with the query. Empty tuples mean "no filter".

    ``status_codes`` holds exact codes (``"404"``) or classes (``"5xx"``).
    ``time_from`` is inclusive, ``time_to`` exclusive. ``tenant_ids`` set by a
    tenant-restricted caller is enforced by the query service, not the store.
    """

    levels: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    endpoints: tuple[str, ...] = ()
    tenant_ids: tuple[str, ...] = ()
    status_codes: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    time_from: datetime | None = None
    time_to: datetime | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A search: query tree + filters + sort + page."""

    query: Node = field(default_factory=MatchAll)
    filters: Filters = field(default_factory=Filters)
    sort: SortField = "timestamp"
    order: SortOrder = "desc"
    limit: int = 50
    cursor: str | None = None
    highlight: bool = True


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Hits are wire-shape event dicts (``LogEvent.to_dict``) plus ``highlight``.

    ``highlight`` maps a field name to a list of fragments in which matched
    terms are wrapped in ``\\x00`` ... ``\\x01`` markers (never HTML: the UI
    turns markers into elements with textContent).
    """

    total: int
    hits: list[dict[str, Any]]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class StatsRequest:
    """Aggregations of DESIGN.md §5 ``/api/stats`` over the matching events."""

    query: Node = field(default_factory=MatchAll)
    filters: Filters = field(default_factory=Filters)
    interval_ms: int = 3_600_000
    top_n: int = 10


class LogStore(abc.ABC):
    """Where events are indexed and searched."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Create indices/templates as needed; called once by the service lifespan."""

    @abc.abstractmethod
    async def write(self, events: Sequence[LogEvent]) -> None:
        """Index a batch idempotently by id; returns once the batch is durable."""

    @abc.abstractmethod
    async def search(self, request: SearchRequest) -> SearchResult:
        """Matching events, sorted, one page at a time with an opaque cursor."""

    @abc.abstractmethod
    async def stats(self, request: StatsRequest) -> dict[str, Any]:
        """The KPI document of DESIGN.md §5 (``/api/stats``)."""

    @abc.abstractmethod
    async def get(self, event_id: str) -> LogEvent | None:
        """One event by id, or None."""

    @abc.abstractmethod
    async def delete_by_source(self, source: str) -> int:
        """Delete every event whose ``source`` equals ``source``; returns how many."""

    @abc.abstractmethod
    async def delete_older_than(self, cutoff: datetime) -> int:
        """Retention: delete events with timestamp < cutoff (whole days where possible)."""

    @abc.abstractmethod
    async def distinct_values(self, field_name: str, *, prefix: str = "", limit: int = 20) -> list[str]:
        """Most frequent values of a keyword field starting with ``prefix`` (autocomplete)."""

    @abc.abstractmethod
    async def health(self) -> CheckResult:
        """Readiness of the store."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release files and connections."""


class DuplicateError(Exception):
    """A unique constraint (username, email, key prefix) was violated."""


class MetaStore(abc.ABC):
    """Metadata: files, users, API keys, saved searches, search history, settings."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, migrate/create indexes; called once by the service lifespan."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abc.abstractmethod
    async def health(self) -> CheckResult:
        """Readiness of the metadata store."""

    # files
    @abc.abstractmethod
    async def create_file(self, record: FileRecord) -> FileRecord:
        """Insert a file record."""

    @abc.abstractmethod
    async def get_file(self, file_id: str) -> FileRecord | None:
        """One file record, or None."""

    @abc.abstractmethod
    async def list_files(self, *, tenant_id: str | None = None, limit: int = 1000) -> list[FileRecord]:
        """Newest first; only ``tenant_id``'s files when given."""

    @abc.abstractmethod
    async def update_file(self, file_id: str, **changes: Any) -> FileRecord | None:
        """Set fields of a file record; returns the new record or None if missing."""

    @abc.abstractmethod
    async def increment_file_counts(self, file_id: str, *, indexed: int = 0) -> FileRecord | None:
        """Atomically add to ``indexed_count`` (the indexer confirms batches concurrently)."""

    @abc.abstractmethod
    async def delete_file(self, file_id: str) -> bool:
        """Delete a file record; True when it existed."""

    @abc.abstractmethod
    async def file_totals(self, *, tenant_id: str | None = None) -> dict[str, int]:
        """``{total_files, total_logs, total_size}``."""

    # users
    @abc.abstractmethod
    async def create_user(self, record: UserRecord) -> UserRecord:
        """Insert a user; DuplicateError on username/email clash."""

    @abc.abstractmethod
    async def get_user(self, user_id: str) -> UserRecord | None:
        """One user by id."""

    @abc.abstractmethod
    async def get_user_by_username(self, username: str) -> UserRecord | None:
        """One user by username (case-insensitive)."""

    @abc.abstractmethod
    async def list_users(self) -> list[UserRecord]:
        """All users, oldest first."""

    @abc.abstractmethod
    async def update_user(self, user_id: str, **changes: Any) -> UserRecord | None:
        """Set fields of a user; DuplicateError on clash."""

    @abc.abstractmethod
    async def delete_user(self, user_id: str) -> bool:
        """Delete a user; True when it existed."""

    @abc.abstractmethod
    async def count_users(self) -> int:
        """Number of users (0 means the first admin must be created)."""

    # api keys
    @abc.abstractmethod
    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Insert a key record (hash only)."""

    @abc.abstractmethod
    async def get_api_key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        """Look a key up by its public prefix."""

    @abc.abstractmethod
    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """All keys, newest first."""

    @abc.abstractmethod
    async def delete_api_key(self, key_id: str) -> bool:
        """Revoke a key; True when it existed."""

    @abc.abstractmethod
    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record the last use of a key."""

    # saved searches and history
    @abc.abstractmethod
    async def create_saved_search(self, record: SavedSearchRecord) -> SavedSearchRecord:
        """Insert a saved search."""

    @abc.abstractmethod
    async def list_saved_searches(self, user_id: str) -> list[SavedSearchRecord]:
        """A user's saved searches, newest first."""

    @abc.abstractmethod
    async def delete_saved_search(self, user_id: str, search_id: str) -> bool:
        """Delete one of the user's saved searches; True when it existed."""

    @abc.abstractmethod
    async def add_search_history(self, record: SearchHistoryRecord, *, keep: int = 100) -> None:
        """Append to a user's history, keeping the newest ``keep`` entries."""

    @abc.abstractmethod
    async def list_search_history(self, user_id: str, *, limit: int = 50) -> list[SearchHistoryRecord]:
        """A user's recent searches, newest first."""

    @abc.abstractmethod
    async def clear_search_history(self, user_id: str) -> int:
        """Delete a user's history; returns how many entries went."""

    @abc.abstractmethod
    async def popular_searches(self, *, limit: int = 10) -> list[dict[str, Any]]:
        """``[{query, count}]`` over all users' recent history, most frequent first."""

    # settings
    @abc.abstractmethod
    async def get_setting(self, key: str) -> Any | None:
        """A runtime setting (JSON value) or None."""

    @abc.abstractmethod
    async def set_setting(self, key: str, value: Any) -> None:
        """Store a runtime setting (JSON value)."""
