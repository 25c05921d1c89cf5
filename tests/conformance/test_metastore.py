"""MetaStore conformance: one suite, every backend.

SQLite always runs (a real file under ``tmp_path``). MongoDB runs when
``LOGWARDEN_MONGODB_URL`` points at a server: each test gets its own database,
dropped afterwards. The tests at the end are SQLite-only: several processes
share one SQLite file, which MongoDB does not need to prove.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from shared.store.base import DuplicateError, MetaStore
from shared.store.records import (
    ApiKeyRecord,
    FileRecord,
    SavedSearchRecord,
    SearchHistoryRecord,
    UserRecord,
)
from shared.store.sqlite_meta import SqliteMetaStore

MONGODB_URL = os.environ.get("LOGWARDEN_MONGODB_URL")
ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "mongodb",
        id="mongodb",
        marks=pytest.mark.skipif(not MONGODB_URL, reason="LOGWARDEN_MONGODB_URL not set"),
    ),
]


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MetaStore]:
    """An opened, empty MetaStore of each backend; closed (and for MongoDB dropped) afterwards."""
    if request.param == "sqlite":
        sqlite_store = SqliteMetaStore(tmp_path / "meta.sqlite3")
        await sqlite_store.open()
        try:
            yield sqlite_store
        finally:
            await sqlite_store.close()
        return

    from pymongo import AsyncMongoClient

    from shared.store.mongo_meta import MongoMetaStore

    assert MONGODB_URL is not None
    database = f"logwarden_test_{uuid.uuid4().hex}"
    mongo_store = MongoMetaStore(MONGODB_URL, database)
    try:
        await mongo_store.open()
        yield mongo_store
    finally:
        await mongo_store.close()
        admin: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(MONGODB_URL)
        try:
            await admin.drop_database(database)
        finally:
            await admin.close()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the SQLite-only tests keep their database."""
    return tmp_path / "data" / "meta.sqlite3"


def at(minutes: float) -> datetime:
    """A fixed UTC instant ``minutes`` after T0, so orderings never depend on the clock."""
    return T0 + timedelta(minutes=minutes)


def make_file(**fields: Any) -> FileRecord:
    """A file record with sensible defaults."""
    fields.setdefault("filename", "app.log")
    return FileRecord(**fields)


def make_user(username: str, **fields: Any) -> UserRecord:
    """A user record with sensible defaults."""
    fields.setdefault("password_hash", "$argon2id$fake")
    return UserRecord(username=username, **fields)


def make_key(prefix: str, **fields: Any) -> ApiKeyRecord:
    """An API key record with sensible defaults."""
    fields.setdefault("name", f"key {prefix}")
    fields.setdefault("key_hash", f"hash-{prefix}")
    fields.setdefault("scopes", ["ingest"])
    return ApiKeyRecord(prefix=prefix, **fields)


# ---------------------------------------------------------------------------- files


async def test_file_create_get_delete(store: MetaStore) -> None:
    """A file record round-trips every field; get/delete of a missing id say so."""
    record = make_file(
        filename="nginx.csv",
        file_type="text/csv",
        file_size=1234,
        format="csv",
        uploaded_by="u1",
        tenant_id="acme",
        records_count=10,
        rejected_count=2,
        errors=[{"line": 3, "reason": "bad timestamp"}, {"line": 9, "reason": "missing message"}],
        path="uploads/x.csv",
    )
    created = await store.create_file(record)
    assert created == record

    assert await store.get_file(record.id) == record
    assert await store.get_file("no-such-file") is None

    assert await store.delete_file(record.id) is True
    assert await store.get_file(record.id) is None
    assert await store.delete_file(record.id) is False


async def test_file_duplicate_id_raises(store: MetaStore) -> None:
    """Inserting an existing id is a DuplicateError and leaves the stored record alone."""
    record = make_file()
    await store.create_file(record)
    with pytest.raises(DuplicateError):
        await store.create_file(record.model_copy(update={"filename": "other.log"}))
    assert (await store.get_file(record.id)) == record


async def test_list_files_newest_first_with_limit(store: MetaStore) -> None:
    """list_files is newest first by uploaded_at and honours limit."""
    records = [make_file(filename=f"f{i}.log", uploaded_at=at(i)) for i in (2, 0, 3, 1)]
    for record in records:
        await store.create_file(record)

    listed = await store.list_files()
    assert [f.filename for f in listed] == ["f3.log", "f2.log", "f1.log", "f0.log"]
    assert [f.filename for f in await store.list_files(limit=2)] == ["f3.log", "f2.log"]
    assert await store.list_files(limit=0) == []


async def test_list_files_and_totals_filter_by_tenant(store: MetaStore) -> None:
    """tenant_id restricts both list_files and file_totals; totals sum indexed_count and size."""
    await store.create_file(make_file(filename="a1", tenant_id="acme", file_size=100, uploaded_at=at(1)))
    await store.create_file(make_file(filename="a2", tenant_id="acme", file_size=50, uploaded_at=at(2)))
    await store.create_file(make_file(filename="b1", tenant_id="beta", file_size=7, uploaded_at=at(3)))
    await store.create_file(make_file(filename="none", file_size=1, uploaded_at=at(4)))
    for name, indexed in (("a1", 10), ("a2", 5), ("b1", 3), ("none", 1)):
        file_id = next(f.id for f in await store.list_files() if f.filename == name)
        await store.increment_file_counts(file_id, indexed=indexed)

    assert [f.filename for f in await store.list_files(tenant_id="acme")] == ["a2", "a1"]
    assert [f.filename for f in await store.list_files(tenant_id="beta")] == ["b1"]
    assert await store.list_files(tenant_id="nobody") == []
    assert len(await store.list_files()) == 4

    assert await store.file_totals(tenant_id="acme") == {
        "total_files": 2,
        "total_logs": 15,
        "total_size": 150,
    }
    assert await store.file_totals(tenant_id="beta") == {"total_files": 1, "total_logs": 3, "total_size": 7}
    assert await store.file_totals() == {"total_files": 4, "total_logs": 19, "total_size": 158}
    assert await store.file_totals(tenant_id="nobody") == {"total_files": 0, "total_logs": 0, "total_size": 0}


async def test_file_totals_empty(store: MetaStore) -> None:
    """An empty store totals to zeros, not None."""
    assert await store.file_totals() == {"total_files": 0, "total_logs": 0, "total_size": 0}


async def test_update_file_sets_only_given_fields(store: MetaStore) -> None:
    """update_file changes the named fields only and returns the stored record."""
    record = await store.create_file(make_file(records_count=5))
    errors = [{"line": 1, "reason": "not JSON"}]

    updated = await store.update_file(record.id, status="failed", failure_reason="boom", errors=errors)
    assert updated is not None
    assert (updated.status, updated.failure_reason, updated.errors) == ("failed", "boom", errors)
    assert updated.records_count == 5
    assert await store.get_file(record.id) == updated

    assert await store.update_file(record.id) == updated  # no changes: the record as it is
    assert await store.update_file("no-such-file", status="indexed") is None


async def test_update_file_rejects_unknown_fields_and_bad_values(store: MetaStore) -> None:
    """Unknown fields, id, and invalid values raise ValueError and change nothing."""
    record = await store.create_file(make_file())
    with pytest.raises(ValueError, match="bogus"):
        await store.update_file(record.id, bogus=1)
    with pytest.raises(ValueError):
        await store.update_file(record.id, **{"status = 'indexed' --": 1})
    with pytest.raises(ValueError):
        await store.update_file(record.id, id="another-id")
    with pytest.raises(ValueError):
        await store.update_file(record.id, status="exploded")
    assert await store.get_file(record.id) == record


async def test_increment_file_counts_is_atomic_under_concurrency(store: MetaStore) -> None:
    """50 concurrent increments add up exactly."""
    record = await store.create_file(make_file())
    amounts = [i % 7 + 1 for i in range(50)]

    results = await asyncio.gather(*(store.increment_file_counts(record.id, indexed=n) for n in amounts))

    assert all(r is not None for r in results)
    stored = await store.get_file(record.id)
    assert stored is not None and stored.indexed_count == sum(amounts)
    # each call returns the record after its own increment: all running totals are distinct
    assert len({r.indexed_count for r in results if r is not None}) == len(amounts)
    assert await store.increment_file_counts("no-such-file", indexed=1) is None


async def test_update_file_does_not_overwrite_concurrent_increments(store: MetaStore) -> None:
    """A status update racing increments never writes back a stale indexed_count."""
    record = await store.create_file(make_file())
    await asyncio.gather(
        *(store.increment_file_counts(record.id, indexed=2) for _ in range(20)),
        store.update_file(record.id, status="processing"),
        store.update_file(record.id, records_count=40),
    )
    stored = await store.get_file(record.id)
    assert stored is not None
    assert (stored.indexed_count, stored.status, stored.records_count) == (40, "processing", 40)


# ---------------------------------------------------------------------------- users


async def test_user_crud(store: MetaStore) -> None:
    """Users: create, get by id and username (any case), list oldest first, update, delete, count."""
    assert await store.count_users() == 0
    alice = await store.create_user(make_user("Alice", email="alice@example.com", role="admin", created_at=at(1)))
    bob = await store.create_user(make_user("bob", created_at=at(0)))
    assert await store.count_users() == 2

    assert await store.get_user(alice.id) == alice
    assert await store.get_user("no-such-user") is None
    assert await store.get_user_by_username("alice") == alice
    assert await store.get_user_by_username("ALICE") == alice
    assert await store.get_user_by_username("carol") is None
    assert [u.username for u in await store.list_users()] == ["bob", "Alice"]  # oldest first

    updated = await store.update_user(bob.id, role="analyst", disabled=True, last_login=at(5))
    assert updated is not None
    assert (updated.role, updated.disabled, updated.last_login) == ("analyst", True, at(5))
    assert await store.get_user(bob.id) == updated
    assert await store.update_user("no-such-user", role="admin") is None

    assert await store.delete_user(bob.id) is True
    assert await store.delete_user(bob.id) is False
    assert await store.count_users() == 1
    assert await store.list_users() == [alice]


async def test_username_is_unique_case_insensitively(store: MetaStore) -> None:
    """Usernames differing only in case clash."""
    await store.create_user(make_user("Admin"))
    with pytest.raises(DuplicateError):
        await store.create_user(make_user("admin"))
    with pytest.raises(DuplicateError):
        await store.create_user(make_user("ADMIN"))
    assert await store.count_users() == 1


async def test_email_is_unique_but_optional(store: MetaStore) -> None:
    """Emails are unique (any case) while many users may have none."""
    await store.create_user(make_user("a", email="ops@example.com"))
    with pytest.raises(DuplicateError):
        await store.create_user(make_user("b", email="ops@example.com"))
    with pytest.raises(DuplicateError):
        await store.create_user(make_user("c", email="OPS@example.com"))
    # any number of users without an email
    await store.create_user(make_user("d"))
    await store.create_user(make_user("e"))
    assert await store.count_users() == 3


async def test_update_user_clash_and_unknown_field(store: MetaStore) -> None:
    """update_user raises DuplicateError on clashes and ValueError on unknown fields or values."""
    await store.create_user(make_user("alice", email="alice@example.com"))
    bob = await store.create_user(make_user("bob"))

    with pytest.raises(DuplicateError):
        await store.update_user(bob.id, username="ALICE")
    with pytest.raises(DuplicateError):
        await store.update_user(bob.id, email="alice@example.com")
    with pytest.raises(ValueError, match="is_superuser"):
        await store.update_user(bob.id, is_superuser=True)
    with pytest.raises(ValueError):
        await store.update_user(bob.id, role="root")
    assert await store.get_user(bob.id) == bob

    renamed = await store.update_user(bob.id, username="robert", email="bob@example.com")
    assert renamed is not None and await store.get_user_by_username("Robert") == renamed


# ---------------------------------------------------------------------------- api keys


async def test_api_key_crud(store: MetaStore) -> None:
    """API keys: lookup by prefix, newest first, touch, delete."""
    old = await store.create_api_key(make_key("lw_old", created_at=at(0), scopes=["read"]))
    new = await store.create_api_key(
        make_key("lw_new", created_at=at(1), scopes=["ingest", "admin"], tenant_id="acme", created_by="u1")
    )

    assert await store.get_api_key_by_prefix("lw_new") == new
    assert await store.get_api_key_by_prefix("lw_none") is None
    assert [k.prefix for k in await store.list_api_keys()] == ["lw_new", "lw_old"]  # newest first

    await store.touch_api_key(old.id, at(10))
    touched = await store.get_api_key_by_prefix("lw_old")
    assert touched is not None and touched.last_used_at == at(10)
    await store.touch_api_key("no-such-key", at(10))  # unknown key: silently nothing

    assert await store.delete_api_key(old.id) is True
    assert await store.delete_api_key(old.id) is False
    assert await store.list_api_keys() == [new]


async def test_api_key_prefix_is_unique(store: MetaStore) -> None:
    """Two keys cannot share a prefix."""
    await store.create_api_key(make_key("lw_dup"))
    with pytest.raises(DuplicateError):
        await store.create_api_key(make_key("lw_dup", key_hash="other"))
    assert len(await store.list_api_keys()) == 1


# ---------------------------------------------------------------------------- saved searches


async def test_saved_searches_per_user(store: MetaStore) -> None:
    """Saved searches are per user, newest first, and only their owner deletes them."""
    filters = {"level": ["ERROR", "CRITICAL"], "time": {"from": "now-15m"}}
    first = await store.create_saved_search(
        SavedSearchRecord(user_id="u1", name="errors", query="level:ERROR", filters=filters, created_at=at(0))
    )
    second = await store.create_saved_search(SavedSearchRecord(user_id="u1", name="slow", created_at=at(1)))
    other = await store.create_saved_search(SavedSearchRecord(user_id="u2", name="mine", created_at=at(2)))

    assert await store.list_saved_searches("u1") == [second, first]  # newest first
    assert await store.list_saved_searches("u2") == [other]
    assert await store.list_saved_searches("u3") == []

    assert await store.delete_saved_search("u2", first.id) is False  # not u2's
    assert await store.delete_saved_search("u1", first.id) is True
    assert await store.delete_saved_search("u1", first.id) is False
    assert await store.list_saved_searches("u1") == [second]


# ---------------------------------------------------------------------------- history


async def test_search_history_newest_first_and_limit(store: MetaStore) -> None:
    """History lists newest first and honours limit."""
    for i in (1, 3, 0, 2):
        await store.add_search_history(
            SearchHistoryRecord(user_id="u1", query=f"q{i}", results_count=i, timestamp=at(i))
        )
    assert [h.query for h in await store.list_search_history("u1")] == ["q3", "q2", "q1", "q0"]
    assert [h.query for h in await store.list_search_history("u1", limit=2)] == ["q3", "q2"]
    assert await store.list_search_history("u2") == []


async def test_search_history_keeps_newest_per_user(store: MetaStore) -> None:
    """Adding history trims that user's entries to the newest keep."""
    await store.add_search_history(SearchHistoryRecord(user_id="u2", query="other", timestamp=at(0)), keep=3)
    for i in range(10):
        await store.add_search_history(SearchHistoryRecord(user_id="u1", query=f"q{i}", timestamp=at(i)), keep=3)

    assert [h.query for h in await store.list_search_history("u1")] == ["q9", "q8", "q7"]
    # trimming one user's history never touches another's
    assert [h.query for h in await store.list_search_history("u2")] == ["other"]

    # an older entry arriving late is itself the one trimmed
    await store.add_search_history(SearchHistoryRecord(user_id="u1", query="late", timestamp=at(-1)), keep=3)
    assert [h.query for h in await store.list_search_history("u1")] == ["q9", "q8", "q7"]


async def test_search_history_round_trips_fields(store: MetaStore) -> None:
    """A history entry keeps its query, filters and results count."""
    record = SearchHistoryRecord(
        user_id="u1", query='service:api AND "timed out"', filters={"level": ["ERROR"]}, results_count=42
    )
    await store.add_search_history(record)
    assert await store.list_search_history("u1") == [record]


async def test_clear_search_history_only_that_user(store: MetaStore) -> None:
    """Clearing history removes one user's entries and counts them."""
    for i in range(3):
        await store.add_search_history(SearchHistoryRecord(user_id="u1", query=f"a{i}", timestamp=at(i)))
    await store.add_search_history(SearchHistoryRecord(user_id="u2", query="b", timestamp=at(0)))

    assert await store.clear_search_history("u1") == 3
    assert await store.list_search_history("u1") == []
    assert [h.query for h in await store.list_search_history("u2")] == ["b"]
    assert await store.clear_search_history("u1") == 0


async def test_popular_searches(store: MetaStore) -> None:
    """Popular searches count trimmed non-blank queries across users, ties most recent first."""
    queries = {
        "u1": ["level:ERROR", "timeout", "level:ERROR", "", "   "],
        "u2": ["level:ERROR", "timeout", "  timeout  "],
        "u3": ["status_code:5xx"],
    }
    minute = 0
    for user, user_queries in queries.items():
        for query in user_queries:
            minute += 1
            await store.add_search_history(SearchHistoryRecord(user_id=user, query=query, timestamp=at(minute)))

    # trimmed, blank queries skipped; equal counts: the most recently used first
    # ("timeout" last ran at minute 8, "level:ERROR" at minute 6)
    assert await store.popular_searches() == [
        {"query": "timeout", "count": 3},
        {"query": "level:ERROR", "count": 3},
        {"query": "status_code:5xx", "count": 1},
    ]
    assert await store.popular_searches(limit=1) == [{"query": "timeout", "count": 3}]


async def test_popular_searches_empty(store: MetaStore) -> None:
    """Blank queries never appear as popular."""
    await store.add_search_history(SearchHistoryRecord(user_id="u1", query=""))
    assert await store.popular_searches() == []


# ---------------------------------------------------------------------------- settings


async def test_settings_round_trip(store: MetaStore) -> None:
    """Settings store nested JSON and a second set replaces the first."""
    value = {
        "retention": {"days": 30, "enabled": True},
        "levels": ["ERROR", "CRITICAL"],
        "ratio": 0.25,
        "nothing": None,
        "nested": [{"a": [1, 2, {"b": "ünïcode"}]}],
    }
    assert await store.get_setting("ui") is None
    await store.set_setting("ui", value)
    assert await store.get_setting("ui") == value

    await store.set_setting("ui", ["replaced"])
    assert await store.get_setting("ui") == ["replaced"]
    await store.set_setting("count", 7)
    assert await store.get_setting("count") == 7
    assert await store.get_setting("ui") == ["replaced"]


# ---------------------------------------------------------------------------- datetimes, health


async def test_datetimes_round_trip_as_utc_aware(store: MetaStore) -> None:
    """Aware and naive datetimes come back as the same instant, UTC-aware, to the millisecond."""
    plus_two = timezone(timedelta(hours=2))
    local = datetime(2024, 5, 1, 14, 30, 15, 123456, tzinfo=plus_two)  # 12:30:15.123456Z
    naive = datetime(2024, 5, 1, 12, 0, 0, 999999)  # taken as UTC

    file = await store.create_file(make_file(uploaded_at=local))
    user = await store.create_user(make_user("tz", created_at=naive, last_login=local))
    key = await store.create_api_key(make_key("lw_tz"))
    await store.touch_api_key(key.id, local)

    stored_file = await store.get_file(file.id)
    stored_user = await store.get_user(user.id)
    stored_key = await store.get_api_key_by_prefix("lw_tz")
    assert stored_file is not None and stored_user is not None and stored_key is not None

    expected_local = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)  # milliseconds kept
    for value, expected in (
        (stored_file.uploaded_at, expected_local),
        (stored_user.last_login, expected_local),
        (stored_user.created_at, datetime(2024, 5, 1, 12, 0, 0, 999000, tzinfo=UTC)),
        (stored_key.last_used_at, expected_local),
    ):
        assert value == expected
        assert value is not None and value.utcoffset() == timedelta(0)
    # what create_* returned is what a read returns
    assert file == stored_file and user == stored_user


async def test_health_reports_healthy(store: MetaStore) -> None:
    """An open store reports healthy with details."""
    result = await store.health()
    assert result.status == "healthy"
    assert isinstance(result.details, dict) and result.details


# ---------------------------------------------------------------------------- SQLite only


async def test_sqlite_health_details_and_pragmas(db_path: Path) -> None:
    """SQLite health names path, size and WAL mode; WAL is persisted in the file."""
    store = SqliteMetaStore(db_path)  # parent directory does not exist yet
    await store.open()
    try:
        result = await store.health()
        size_on_disk = await asyncio.to_thread(os.path.getsize, db_path)
    finally:
        await store.close()
    assert result.status == "healthy"
    assert result.details["path"] == str(db_path)
    assert result.details["journal_mode"] == "wal"
    assert result.details["size_bytes"] == size_on_disk > 0

    # WAL is a property of the file, so every other process gets it too
    conn = sqlite3.connect(db_path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_sqlite_closed_store_refuses_work(db_path: Path) -> None:
    """close() is idempotent and a closed store raises instead of hanging."""
    store = SqliteMetaStore(db_path)
    await store.open()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(RuntimeError, match="not open"):
        await store.count_users()


async def test_sqlite_two_instances_share_one_file(db_path: Path) -> None:
    """Two stores on one file open together and see each other's writes."""
    first, second = SqliteMetaStore(db_path), SqliteMetaStore(db_path)
    await asyncio.gather(first.open(), second.open())
    try:
        file = await first.create_file(make_file())
        assert await second.get_file(file.id) == file

        user = await second.create_user(make_user("shared"))
        assert await first.get_user_by_username("SHARED") == user
        with pytest.raises(DuplicateError):
            await first.create_user(make_user("Shared"))

        await second.set_setting("flag", {"on": True})
        assert await first.get_setting("flag") == {"on": True}

        # increments from both "processes" interleave without losing any
        await asyncio.gather(
            *(store.increment_file_counts(file.id, indexed=1) for store in (first, second) for _ in range(25))
        )
        stored = await first.get_file(file.id)
        assert stored is not None and stored.indexed_count == 50
    finally:
        await first.close()
        await second.close()


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from shared.store.base import DuplicateError
    from shared.store.records import FileRecord
    from shared.store.sqlite_meta import SqliteMetaStore

    async def main() -> None:
        store = SqliteMetaStore(Path(sys.argv[1]))
        await store.open()
        try:
            try:
                await store.create_file(FileRecord(id="shared", filename="shared.log"))
            except DuplicateError:
                pass
            for _ in range(int(sys.argv[2])):
                await store.increment_file_counts("shared", indexed=1)
        finally:
            await store.close()

    asyncio.run(main())
    """
)


async def test_sqlite_real_processes_open_and_write_concurrently(db_path: Path) -> None:
    """Real processes opening a fresh file at once migrate it once and lose no increment."""
    processes, increments = 4, 25
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WORKER,
            str(db_path),
            str(increments),
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(processes)
    ]
    outputs = await asyncio.gather(*(w.communicate() for w in workers))
    for worker, (_, stderr) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, stderr.decode()

    store = SqliteMetaStore(db_path)
    await store.open()
    try:
        shared = await store.get_file("shared")
        assert shared is not None and shared.indexed_count == processes * increments
        assert (await store.file_totals())["total_files"] == 1
    finally:
        await store.close()


def _migration_rows(path: Path) -> list[tuple[Any, ...]]:
    """The recorded migrations, read with plain sqlite3 (closed before returning)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT version, name, applied_at FROM schema_migrations ORDER BY version").fetchall()
    finally:
        conn.close()


async def test_sqlite_migrations_recorded_and_not_rerun(db_path: Path) -> None:
    """Migrations are recorded and a reopen does not apply them again."""
    from shared.store.sqlite_meta import MIGRATIONS

    store = SqliteMetaStore(db_path)
    await store.open()
    try:
        await store.set_setting("survives", "reopen")
        assert (await store.health()).details["schema_version"] == MIGRATIONS[-1][0]
    finally:
        await store.close()
    rows = _migration_rows(db_path)
    assert [r[0] for r in rows] == [m[0] for m in MIGRATIONS]

    # Reopening must not run migrations again: the steps use plain CREATE TABLE,
    # so a re-run would fail, and the recorded rows (with their times) stay as they were.
    reopened = SqliteMetaStore(db_path)
    await reopened.open()
    try:
        assert await reopened.get_setting("survives") == "reopen"
    finally:
        await reopened.close()
    assert _migration_rows(db_path) == rows


async def test_sqlite_refuses_newer_schema(db_path: Path) -> None:
    """A file migrated by newer code is refused rather than used."""
    store = SqliteMetaStore(db_path)
    await store.open()
    await store.close()
    conn = sqlite3.connect(db_path)
    try:
        with conn:
            conn.execute("INSERT INTO schema_migrations VALUES (9999, 'from the future', '2099-01-01T00:00:00.000Z')")
    finally:
        conn.close()

    newer = SqliteMetaStore(db_path)
    with pytest.raises(RuntimeError, match="9999"):
        await newer.open()
    with pytest.raises(RuntimeError, match="not open"):
        await newer.count_users()
