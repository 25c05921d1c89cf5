"""SQLite MetaStore: the embedded default for files, users, API keys, searches and settings.

Several processes (gateway, ingest, query) open the same database file, so:

* the database runs in WAL mode (readers never block the single writer) with a
  busy timeout (a writer waits for another process's write lock instead of failing);
* every write is one ``BEGIN IMMEDIATE`` transaction: taking the write lock up
  front avoids the deferred read->write upgrade that fails with ``SQLITE_BUSY``
  without ever calling the busy handler;
* the schema is a numbered list of migrations applied at ``open()`` inside such a
  transaction, so two processes starting together apply each step exactly once.

All SQLite calls run on aiosqlite's worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiosqlite
import orjson
from pydantic import BaseModel

from shared.health import CheckResult
from shared.models import to_millis
from shared.store.base import DuplicateError, MetaStore
from shared.store.records import (
    ApiKeyRecord,
    FileRecord,
    SavedSearchRecord,
    SearchHistoryRecord,
    UserRecord,
)

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000

# Each step is (version, name, statements). Steps are append-only: a released step
# is never edited, a schema change is a new step. Statements run one by one because
# sqlite3's executescript() would COMMIT the surrounding migration transaction.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "initial schema",
        (
            """CREATE TABLE files (
                id TEXT PRIMARY KEY,
                filename TEXT NOT NULL,
                file_type TEXT NOT NULL DEFAULT '',
                file_size INTEGER NOT NULL DEFAULT 0,
                format TEXT,
                status TEXT NOT NULL,
                uploaded_at TEXT NOT NULL,
                uploaded_by TEXT,
                tenant_id TEXT,
                records_count INTEGER NOT NULL DEFAULT 0,
                rejected_count INTEGER NOT NULL DEFAULT 0,
                indexed_count INTEGER NOT NULL DEFAULT 0,
                errors TEXT NOT NULL DEFAULT '[]',
                failure_reason TEXT,
                path TEXT
            )""",
            "CREATE INDEX files_uploaded_at ON files (uploaded_at)",
            "CREATE INDEX files_tenant_uploaded_at ON files (tenant_id, uploaded_at)",
            """CREATE TABLE users (
                id TEXT PRIMARY KEY,
                username TEXT NOT NULL COLLATE NOCASE,
                email TEXT COLLATE NOCASE,
                password_hash TEXT NOT NULL,
                role TEXT NOT NULL,
                disabled INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                last_login TEXT
            )""",
            "CREATE UNIQUE INDEX users_username ON users (username COLLATE NOCASE)",
            "CREATE UNIQUE INDEX users_email ON users (email COLLATE NOCASE) WHERE email IS NOT NULL",
            "CREATE INDEX users_created_at ON users (created_at)",
            """CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                prefix TEXT NOT NULL,
                key_hash TEXT NOT NULL,
                scopes TEXT NOT NULL DEFAULT '[]',
                tenant_id TEXT,
                created_at TEXT NOT NULL,
                created_by TEXT,
                last_used_at TEXT
            )""",
            "CREATE UNIQUE INDEX api_keys_prefix ON api_keys (prefix)",
            """CREATE TABLE saved_searches (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                name TEXT NOT NULL,
                query TEXT NOT NULL DEFAULT '',
                filters TEXT NOT NULL DEFAULT '{}',
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX saved_searches_user_created ON saved_searches (user_id, created_at)",
            """CREATE TABLE search_history (
                id TEXT PRIMARY KEY,
                user_id TEXT NOT NULL,
                query TEXT NOT NULL DEFAULT '',
                filters TEXT NOT NULL DEFAULT '{}',
                results_count INTEGER NOT NULL DEFAULT 0,
                timestamp TEXT NOT NULL
            )""",
            "CREATE INDEX search_history_user_timestamp ON search_history (user_id, timestamp)",
            """CREATE TABLE settings (
                key TEXT PRIMARY KEY,
                value TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
        ),
    ),
)

M = TypeVar("M", bound=BaseModel)


def format_datetime(value: datetime) -> str:
    """UTC ISO 8601 with milliseconds and ``Z``: fixed width, so text order is time order."""
    value = to_millis(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def parse_datetime(value: str) -> datetime:
    """Inverse of :func:`format_datetime`; always UTC-aware."""
    return datetime.fromisoformat(value).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Table(Generic[M]):
    """How one record model maps to one table (column names are the model's fields)."""

    name: str
    model: type[M]
    json_columns: frozenset[str] = frozenset()
    datetime_columns: frozenset[str] = frozenset()

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in model field order."""
        return tuple(self.model.model_fields)

    def to_row(self, record: M) -> dict[str, Any]:
        """Record -> column values ready for binding."""
        row: dict[str, Any] = {}
        for column, value in record.model_dump().items():
            if value is None:
                row[column] = None
            elif column in self.json_columns:
                row[column] = orjson.dumps(value).decode()
            elif column in self.datetime_columns:
                row[column] = format_datetime(value)
            elif isinstance(value, bool):
                row[column] = int(value)
            else:
                row[column] = value
        return row

    def from_row(self, row: Mapping[str, Any] | sqlite3.Row) -> M:
        """Stored row -> record."""
        data: dict[str, Any] = {}
        for column in self.columns:
            value = row[column]
            if value is not None and column in self.json_columns:
                value = orjson.loads(value)
            elif value is not None and column in self.datetime_columns:
                value = parse_datetime(value)
            data[column] = value
        return self.model.model_validate(data)

    def normalised(self, record: M) -> M:
        """The record exactly as a later read will return it (datetimes UTC, ms)."""
        return self.from_row(self.to_row(record))

    def select_sql(self) -> str:
        """``SELECT <all columns> FROM <table>`` built from our own column list."""
        return f"SELECT {', '.join(self.columns)} FROM {self.name}"

    def insert_sql(self) -> str:
        """Parameterised INSERT of every column."""
        names = ", ".join(self.columns)
        marks = ", ".join(f":{c}" for c in self.columns)
        return f"INSERT INTO {self.name} ({names}) VALUES ({marks})"


FILES = _Table("files", FileRecord, frozenset({"errors"}), frozenset({"uploaded_at"}))
USERS = _Table("users", UserRecord, datetime_columns=frozenset({"created_at", "last_login"}))
API_KEYS = _Table("api_keys", ApiKeyRecord, frozenset({"scopes"}), frozenset({"created_at", "last_used_at"}))
SAVED = _Table("saved_searches", SavedSearchRecord, frozenset({"filters"}), frozenset({"created_at"}))
HISTORY = _Table("search_history", SearchHistoryRecord, frozenset({"filters"}), frozenset({"timestamp"}))


def _check_changes(table: _Table[Any], changes: Mapping[str, Any]) -> list[str]:
    """The changed column names, in our own spelling; ValueError for anything else.

    Caller keys end up in SQL text (``SET <column> = ?``), so only names that are
    columns of the table are accepted, and ``id`` is immutable.
    """
    allowed = [c for c in table.columns if c != "id"]
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ValueError(f"unknown or read-only {table.name} field(s): {', '.join(unknown)}")
    return [c for c in allowed if c in changes]


def _is_unique_violation(exc: sqlite3.IntegrityError) -> bool:
    """True for UNIQUE / PRIMARY KEY violations (not NOT NULL, CHECK, ...)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name:
        return name in {"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"}
    return "UNIQUE constraint failed" in str(exc)


async def _rollback(conn: aiosqlite.Connection) -> None:
    """Roll back if a transaction is still open (SQLite rolls some errors back itself)."""
    if conn.in_transaction:
        await conn.execute("ROLLBACK")


class SqliteMetaStore(MetaStore):
    """MetaStore on one SQLite file, safe to share between processes."""

    def __init__(self, path: Path) -> None:
        """Remember the path; nothing is opened until :meth:`open`."""
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        # One connection per store: coroutines must not interleave statements of
        # different transactions on it, so every use of the connection is serialised.
        self._lock = asyncio.Lock()

    # lifecycle

    async def open(self) -> None:
        """Connect, set the connection pragmas and apply pending migrations."""
        if self._conn is not None:
            return
        await asyncio.to_thread(self.path.parent.mkdir, parents=True, exist_ok=True)
        # isolation_level=None: no implicit BEGIN from the sqlite3 module; every
        # transaction here is an explicit BEGIN IMMEDIATE.
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            # busy_timeout first: the journal-mode switch and the migration below
            # may have to wait for another process opening the same file.
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS:d}")
            await conn.execute("PRAGMA foreign_keys = ON")
            async with conn.execute("PRAGMA journal_mode = WAL") as cur:
                row = await cur.fetchone()
            mode = str(row[0]).lower() if row else ""
            if mode != "wal":
                # Still correct (just more lock waiting), e.g. on filesystems without
                # shared memory; health() reports the mode.
                log.warning("SQLite at %s runs in journal_mode=%s, not WAL", self.path, mode)
            await self._migrate(conn)
        except BaseException:
            await conn.close()
            raise
        self._conn = conn

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            async with self._lock:
                await conn.close()

    async def _migrate(self, conn: aiosqlite.Connection) -> None:
        """Apply the migrations this database lacks, all in one write transaction."""
        await conn.execute("BEGIN IMMEDIATE")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cur:
                row = await cur.fetchone()
            current = int(row[0]) if row else 0
            latest = MIGRATIONS[-1][0]
            if current > latest:
                # Newer code has migrated this file; running old code on it could corrupt it.
                raise RuntimeError(f"{self.path} has schema version {current}, this build knows up to {latest}")
            now = format_datetime(datetime.now(UTC))
            for version, name, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (version, name, now),
                )
                log.info("applied SQLite migration %d (%s) to %s", version, name, self.path)
            await conn.execute("COMMIT")
        except BaseException:
            await _rollback(conn)
            raise

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosqlite.Connection]:
        """Exclusive use of the connection for one read or autocommit statement."""
        async with self._lock:
            if self._conn is None:
                raise RuntimeError("SqliteMetaStore is not open")
            yield self._conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; unique violations become DuplicateError."""
        async with self._connection() as conn:
            await conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                await conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                await _rollback(conn)
                if _is_unique_violation(exc):
                    raise DuplicateError(str(exc)) from exc
                raise
            except BaseException:
                await _rollback(conn)
                raise

    async def _fetchall(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        """Run a read and return every row."""
        async with self._connection() as conn:
            rows = await conn.execute_fetchall(sql, params)
        return list(rows)

    async def _fetchone(self, sql: str, params: Iterable[Any] | Mapping[str, Any] = ()) -> sqlite3.Row | None:
        """Run a read and return the first row, if any."""
        rows = await self._fetchall(sql, params)
        return rows[0] if rows else None

    async def health(self) -> CheckResult:
        """``SELECT 1`` plus file size and journal mode (the caller times the check)."""
        async with self._connection() as conn:
            async with conn.execute("SELECT 1") as cur:
                await cur.fetchone()
            async with conn.execute("PRAGMA journal_mode") as cur:
                mode_row = await cur.fetchone()
            async with conn.execute("SELECT MAX(version) FROM schema_migrations") as cur:
                version_row = await cur.fetchone()
        size = (await asyncio.to_thread(self.path.stat)).st_size
        return CheckResult(
            "healthy",
            details={
                "path": str(self.path),
                "size_bytes": size,
                "journal_mode": str(mode_row[0]) if mode_row else None,
                "schema_version": version_row[0] if version_row else None,
            },
        )

    # generic helpers

    async def _insert(self, table: _Table[M], record: M) -> M:
        """Insert a record; returns it as stored."""
        row = table.to_row(record)
        async with self._transaction() as conn:
            await conn.execute(table.insert_sql(), row)
        return table.from_row(row)

    async def _get(self, table: _Table[M], record_id: str) -> M | None:
        """One record by id."""
        row = await self._fetchone(f"{table.select_sql()} WHERE id = ?", (record_id,))
        return table.from_row(row) if row is not None else None

    async def _update(self, table: _Table[M], record_id: str, changes: Mapping[str, Any]) -> M | None:
        """Validate ``changes`` against the model, then SET only those columns.

        Only the named columns are written, so a concurrent ``indexed_count``
        increment is never overwritten with the value read here.
        """
        columns = _check_changes(table, changes)
        async with self._transaction() as conn:
            async with conn.execute(f"{table.select_sql()} WHERE id = ?", (record_id,)) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            current = table.from_row(row)
            if not columns:
                return current
            # Validation through the model rejects bad values (pydantic's
            # ValidationError is a ValueError) before anything is written.
            updated = table.model.model_validate({**current.model_dump(), **changes})
            values = table.to_row(updated)
            assignments = ", ".join(f"{c} = :{c}" for c in columns)
            params = {c: values[c] for c in columns}
            params["__id"] = record_id
            await conn.execute(f"UPDATE {table.name} SET {assignments} WHERE id = :__id", params)
        return table.from_row(values)

    async def _delete(self, table: _Table[Any], record_id: str) -> bool:
        """Delete by id; True when a row went."""
        async with self._transaction() as conn:
            async with conn.execute(f"DELETE FROM {table.name} WHERE id = ?", (record_id,)) as cur:
                return cur.rowcount > 0

    # files

    async def create_file(self, record: FileRecord) -> FileRecord:
        """Insert a file record."""
        return await self._insert(FILES, record)

    async def get_file(self, file_id: str) -> FileRecord | None:
        """One file record, or None."""
        return await self._get(FILES, file_id)

    async def list_files(self, *, tenant_id: str | None = None, limit: int = 1000) -> list[FileRecord]:
        """Newest first; only ``tenant_id``'s files when given."""
        limit = max(limit, 0)  # a negative LIMIT means "no limit" to SQLite
        if tenant_id is None:
            rows = await self._fetchall(f"{FILES.select_sql()} ORDER BY uploaded_at DESC, id DESC LIMIT ?", (limit,))
        else:
            rows = await self._fetchall(
                f"{FILES.select_sql()} WHERE tenant_id = ? ORDER BY uploaded_at DESC, id DESC LIMIT ?",
                (tenant_id, limit),
            )
        return [FILES.from_row(r) for r in rows]

    async def update_file(self, file_id: str, **changes: Any) -> FileRecord | None:
        """Set fields of a file record; returns the new record or None if missing."""
        return await self._update(FILES, file_id, changes)

    async def increment_file_counts(self, file_id: str, *, indexed: int = 0) -> FileRecord | None:
        """Atomically add to ``indexed_count`` (one UPDATE, so concurrent adds never race)."""
        async with self._transaction() as conn:
            await conn.execute(
                "UPDATE files SET indexed_count = indexed_count + ? WHERE id = ?", (int(indexed), file_id)
            )
            async with conn.execute(f"{FILES.select_sql()} WHERE id = ?", (file_id,)) as cur:
                row = await cur.fetchone()
        return FILES.from_row(row) if row is not None else None

    async def delete_file(self, file_id: str) -> bool:
        """Delete a file record; True when it existed."""
        return await self._delete(FILES, file_id)

    async def file_totals(self, *, tenant_id: str | None = None) -> dict[str, int]:
        """``{total_files, total_logs, total_size}``; logs are indexed (searchable) events."""
        sql = "SELECT COUNT(*), COALESCE(SUM(indexed_count), 0), COALESCE(SUM(file_size), 0) FROM files"
        if tenant_id is None:
            row = await self._fetchone(sql)
        else:
            row = await self._fetchone(f"{sql} WHERE tenant_id = ?", (tenant_id,))
        assert row is not None  # an aggregate always yields one row
        return {"total_files": int(row[0]), "total_logs": int(row[1]), "total_size": int(row[2])}

    # users

    async def create_user(self, record: UserRecord) -> UserRecord:
        """Insert a user; DuplicateError on username/email clash."""
        return await self._insert(USERS, record)

    async def get_user(self, user_id: str) -> UserRecord | None:
        """One user by id."""
        return await self._get(USERS, user_id)

    async def get_user_by_username(self, username: str) -> UserRecord | None:
        """One user by username (case-insensitive)."""
        row = await self._fetchone(f"{USERS.select_sql()} WHERE username = ? COLLATE NOCASE", (username,))
        return USERS.from_row(row) if row is not None else None

    async def list_users(self) -> list[UserRecord]:
        """All users, oldest first."""
        rows = await self._fetchall(f"{USERS.select_sql()} ORDER BY created_at ASC, id ASC")
        return [USERS.from_row(r) for r in rows]

    async def update_user(self, user_id: str, **changes: Any) -> UserRecord | None:
        """Set fields of a user; DuplicateError on clash."""
        return await self._update(USERS, user_id, changes)

    async def delete_user(self, user_id: str) -> bool:
        """Delete a user; True when it existed."""
        return await self._delete(USERS, user_id)

    async def count_users(self) -> int:
        """Number of users (0 means the first admin must be created)."""
        row = await self._fetchone("SELECT COUNT(*) FROM users")
        return int(row[0]) if row is not None else 0

    # api keys

    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Insert a key record (hash only); DuplicateError on prefix clash."""
        return await self._insert(API_KEYS, record)

    async def get_api_key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        """Look a key up by its public prefix."""
        row = await self._fetchone(f"{API_KEYS.select_sql()} WHERE prefix = ?", (prefix,))
        return API_KEYS.from_row(row) if row is not None else None

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """All keys, newest first."""
        rows = await self._fetchall(f"{API_KEYS.select_sql()} ORDER BY created_at DESC, id DESC")
        return [API_KEYS.from_row(r) for r in rows]

    async def delete_api_key(self, key_id: str) -> bool:
        """Revoke a key; True when it existed."""
        return await self._delete(API_KEYS, key_id)

    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record the last use of a key (no-op for an unknown key)."""
        async with self._transaction() as conn:
            await conn.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (format_datetime(when), key_id))

    # saved searches and history

    async def create_saved_search(self, record: SavedSearchRecord) -> SavedSearchRecord:
        """Insert a saved search."""
        return await self._insert(SAVED, record)

    async def list_saved_searches(self, user_id: str) -> list[SavedSearchRecord]:
        """A user's saved searches, newest first."""
        rows = await self._fetchall(
            f"{SAVED.select_sql()} WHERE user_id = ? ORDER BY created_at DESC, id DESC", (user_id,)
        )
        return [SAVED.from_row(r) for r in rows]

    async def delete_saved_search(self, user_id: str, search_id: str) -> bool:
        """Delete one of the user's saved searches; True when it existed."""
        async with self._transaction() as conn:
            async with conn.execute(
                "DELETE FROM saved_searches WHERE id = ? AND user_id = ?", (search_id, user_id)
            ) as cur:
                return cur.rowcount > 0

    async def add_search_history(self, record: SearchHistoryRecord, *, keep: int = 100) -> None:
        """Append to a user's history, keeping the newest ``keep`` entries (same transaction)."""
        row = HISTORY.to_row(record)
        async with self._transaction() as conn:
            await conn.execute(HISTORY.insert_sql(), row)
            await conn.execute(
                "DELETE FROM search_history WHERE user_id = :user_id AND id NOT IN ("
                " SELECT id FROM search_history WHERE user_id = :user_id"
                " ORDER BY timestamp DESC, id DESC LIMIT :keep)",
                {"user_id": record.user_id, "keep": max(keep, 0)},
            )

    async def list_search_history(self, user_id: str, *, limit: int = 50) -> list[SearchHistoryRecord]:
        """A user's recent searches, newest first."""
        rows = await self._fetchall(
            f"{HISTORY.select_sql()} WHERE user_id = ? ORDER BY timestamp DESC, id DESC LIMIT ?",
            (user_id, max(limit, 0)),
        )
        return [HISTORY.from_row(r) for r in rows]

    async def clear_search_history(self, user_id: str) -> int:
        """Delete a user's history; returns how many entries went."""
        async with self._transaction() as conn:
            async with conn.execute("DELETE FROM search_history WHERE user_id = ?", (user_id,)) as cur:
                return max(cur.rowcount, 0)

    async def popular_searches(self, *, limit: int = 10) -> list[dict[str, Any]]:
        """``[{query, count}]`` of non-blank queries (trimmed), most frequent then most recent first."""
        rows = await self._fetchall(
            "SELECT TRIM(query) AS q, COUNT(*) AS n, MAX(timestamp) AS last FROM search_history"
            " WHERE TRIM(query) <> '' GROUP BY q ORDER BY n DESC, last DESC, q ASC LIMIT ?",
            (max(limit, 0),),
        )
        return [{"query": r["q"], "count": int(r["n"])} for r in rows]

    # settings

    async def get_setting(self, key: str) -> Any | None:
        """A runtime setting (JSON value) or None."""
        row = await self._fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return orjson.loads(row[0]) if row is not None else None

    async def set_setting(self, key: str, value: Any) -> None:
        """Store a runtime setting (JSON value), replacing any previous value."""
        encoded = orjson.dumps(value).decode()  # fails before the transaction if not JSON-able
        async with self._transaction() as conn:
            await conn.execute(
                "INSERT INTO settings (key, value, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, encoded, format_datetime(datetime.now(UTC))),
            )
