"""MongoDB MetaStore: the scale-out backend, on PyMongo's native async API.

``AsyncMongoClient`` (PyMongo >= 4.9) replaces Motor, which is deprecated. Each
record is one document whose ``_id`` is the record id. Uniqueness (username and
email case-insensitively, API key prefix) is enforced by unique indexes created
in :meth:`MongoMetaStore.open`, so concurrent inserts from several replicas
cannot both win; the index error becomes :class:`DuplicateError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.collation import Collation
from pymongo.errors import DuplicateKeyError

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

M = TypeVar("M", bound=BaseModel)
Doc = dict[str, Any]

# Strength 2 compares letters case-insensitively (but accent-sensitively). A query
# only uses (and agrees with) a collated index when it names the same collation.
CASE_INSENSITIVE = Collation(locale="en", strength=2)

NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def _to_doc(record: BaseModel) -> Doc:
    """Record -> document: ``id`` becomes ``_id``, datetimes are UTC with ms (BSON precision)."""
    doc = record.model_dump()
    for key, value in doc.items():
        if isinstance(value, datetime):
            doc[key] = to_millis(value)
    doc["_id"] = doc.pop("id")
    return doc


def _from_doc(model: type[M], doc: Mapping[str, Any]) -> M:
    """Document -> record."""
    data = dict(doc)
    data["id"] = data.pop("_id")
    return model.model_validate(data)


def _maybe(model: type[M], doc: Mapping[str, Any] | None) -> M | None:
    """``_from_doc`` for an optional document."""
    return _from_doc(model, doc) if doc is not None else None


def _check_changes(model: type[BaseModel], changes: Mapping[str, Any]) -> None:
    """ValueError for fields the model lacks, and for the immutable ``id``."""
    allowed = set(model.model_fields) - {"id"}
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise ValueError(f"unknown or read-only {model.__name__} field(s): {', '.join(unknown)}")


class MongoMetaStore(MetaStore):
    """MetaStore on one MongoDB database."""

    def __init__(self, url: str, database: str) -> None:
        """Create the client; it connects lazily, on the first operation in :meth:`open`."""
        self.database_name = database
        # tz_aware: datetimes come back UTC-aware, like every other backend.
        self._client: AsyncMongoClient[Doc] = AsyncMongoClient(url, tz_aware=True, tzinfo=UTC)
        db = self._client[database]
        self._files: AsyncCollection[Doc] = db["files"]
        self._users: AsyncCollection[Doc] = db["users"]
        self._keys: AsyncCollection[Doc] = db["api_keys"]
        self._saved: AsyncCollection[Doc] = db["saved_searches"]
        self._history: AsyncCollection[Doc] = db["search_history"]
        self._settings: AsyncCollection[Doc] = db["settings"]

    # lifecycle

    async def open(self) -> None:
        """Create the indexes (idempotent: createIndexes with an identical spec is a no-op)."""
        await self._users.create_index(
            [("username", ASCENDING)], name="username_unique", unique=True, collation=CASE_INSENSITIVE
        )
        # Partial on $type string, not $exists: a stored ``email: null`` "exists",
        # and many users may have no email.
        await self._users.create_index(
            [("email", ASCENDING)],
            name="email_unique",
            unique=True,
            collation=CASE_INSENSITIVE,
            partialFilterExpression={"email": {"$type": "string"}},
        )
        await self._users.create_index([("created_at", ASCENDING)], name="created_at")
        await self._keys.create_index([("prefix", ASCENDING)], name="prefix_unique", unique=True)
        await self._files.create_index([("uploaded_at", DESCENDING)], name="uploaded_at")
        await self._files.create_index(
            [("tenant_id", ASCENDING), ("uploaded_at", DESCENDING)], name="tenant_uploaded_at"
        )
        await self._saved.create_index([("user_id", ASCENDING), ("created_at", DESCENDING)], name="user_created_at")
        await self._history.create_index([("user_id", ASCENDING), ("timestamp", DESCENDING)], name="user_timestamp")

    async def close(self) -> None:
        """Close the client's connection pools."""
        await self._client.close()

    async def health(self) -> CheckResult:
        """``ping`` on the admin database (the caller times the check)."""
        await self._client.admin.command("ping")
        # Never the URL: it may carry credentials.
        return CheckResult("healthy", details={"database": self.database_name})

    # generic helpers

    async def _insert(self, collection: AsyncCollection[Doc], record: M) -> M:
        """Insert a record; returns it as stored; DuplicateError on any unique index."""
        doc = _to_doc(record)
        try:
            await collection.insert_one(dict(doc))
        except DuplicateKeyError as exc:
            raise DuplicateError(str(exc)) from exc
        return _from_doc(type(record), doc)

    async def _update(
        self, collection: AsyncCollection[Doc], model: type[M], record_id: str, changes: Mapping[str, Any]
    ) -> M | None:
        """Validate ``changes`` against the model, then ``$set`` only those fields.

        Only the named fields are written, so a concurrent ``$inc`` of
        ``indexed_count`` is never overwritten with the value read here.
        """
        _check_changes(model, changes)
        current = await collection.find_one({"_id": record_id})
        if current is None:
            return None
        if not changes:
            return _from_doc(model, current)
        merged = _from_doc(model, current).model_dump()
        merged.update(changes)
        values = _to_doc(model.model_validate(merged))  # ValidationError is a ValueError
        try:
            doc = await collection.find_one_and_update(
                {"_id": record_id},
                {"$set": {key: values[key] for key in changes}},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError as exc:
            raise DuplicateError(str(exc)) from exc
        return _maybe(model, doc)

    # files

    async def create_file(self, record: FileRecord) -> FileRecord:
        """Insert a file record."""
        return await self._insert(self._files, record)

    async def get_file(self, file_id: str) -> FileRecord | None:
        """One file record, or None."""
        return _maybe(FileRecord, await self._files.find_one({"_id": file_id}))

    async def list_files(self, *, tenant_id: str | None = None, limit: int = 1000) -> list[FileRecord]:
        """Newest first; only ``tenant_id``'s files when given."""
        if limit <= 0:
            return []  # limit(0) means "no limit" to MongoDB
        query: Doc = {} if tenant_id is None else {"tenant_id": tenant_id}
        cursor = self._files.find(query).sort([("uploaded_at", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        return [_from_doc(FileRecord, d) for d in await cursor.to_list()]

    async def update_file(self, file_id: str, **changes: Any) -> FileRecord | None:
        """Set fields of a file record; returns the new record or None if missing."""
        return await self._update(self._files, FileRecord, file_id, changes)

    async def increment_file_counts(self, file_id: str, *, indexed: int = 0) -> FileRecord | None:
        """Atomically add to ``indexed_count`` with ``$inc``."""
        doc = await self._files.find_one_and_update(
            {"_id": file_id}, {"$inc": {"indexed_count": int(indexed)}}, return_document=ReturnDocument.AFTER
        )
        return _maybe(FileRecord, doc)

    async def delete_file(self, file_id: str) -> bool:
        """Delete a file record; True when it existed."""
        return (await self._files.delete_one({"_id": file_id})).deleted_count > 0

    async def file_totals(self, *, tenant_id: str | None = None) -> dict[str, int]:
        """``{total_files, total_logs, total_size}``; logs are indexed (searchable) events."""
        match: Doc = {} if tenant_id is None else {"tenant_id": tenant_id}
        cursor = await self._files.aggregate(
            [
                {"$match": match},
                {
                    "$group": {
                        "_id": None,
                        "files": {"$sum": 1},
                        "logs": {"$sum": "$indexed_count"},
                        "size": {"$sum": "$file_size"},
                    }
                },
            ]
        )
        rows = await cursor.to_list()
        row = rows[0] if rows else {"files": 0, "logs": 0, "size": 0}
        return {
            "total_files": int(row["files"]),
            "total_logs": int(row["logs"]),
            "total_size": int(row["size"]),
        }

    # users

    async def create_user(self, record: UserRecord) -> UserRecord:
        """Insert a user; DuplicateError on username/email clash."""
        return await self._insert(self._users, record)

    async def get_user(self, user_id: str) -> UserRecord | None:
        """One user by id."""
        return _maybe(UserRecord, await self._users.find_one({"_id": user_id}))

    async def get_user_by_username(self, username: str) -> UserRecord | None:
        """One user by username (case-insensitive, through the collated unique index)."""
        doc = await self._users.find_one({"username": username}, collation=CASE_INSENSITIVE)
        return _maybe(UserRecord, doc)

    async def list_users(self) -> list[UserRecord]:
        """All users, oldest first."""
        cursor = self._users.find({}).sort([("created_at", ASCENDING), ("_id", ASCENDING)])
        return [_from_doc(UserRecord, d) for d in await cursor.to_list()]

    async def update_user(self, user_id: str, **changes: Any) -> UserRecord | None:
        """Set fields of a user; DuplicateError on clash."""
        return await self._update(self._users, UserRecord, user_id, changes)

    async def delete_user(self, user_id: str) -> bool:
        """Delete a user; True when it existed."""
        return (await self._users.delete_one({"_id": user_id})).deleted_count > 0

    async def count_users(self) -> int:
        """Number of users (0 means the first admin must be created)."""
        return await self._users.count_documents({})

    # api keys

    async def create_api_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Insert a key record (hash only); DuplicateError on prefix clash."""
        return await self._insert(self._keys, record)

    async def get_api_key_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        """Look a key up by its public prefix."""
        return _maybe(ApiKeyRecord, await self._keys.find_one({"prefix": prefix}))

    async def list_api_keys(self) -> list[ApiKeyRecord]:
        """All keys, newest first."""
        cursor = self._keys.find({}).sort(NEWEST_FIRST)
        return [_from_doc(ApiKeyRecord, d) for d in await cursor.to_list()]

    async def delete_api_key(self, key_id: str) -> bool:
        """Revoke a key; True when it existed."""
        return (await self._keys.delete_one({"_id": key_id})).deleted_count > 0

    async def touch_api_key(self, key_id: str, when: datetime) -> None:
        """Record the last use of a key (no-op for an unknown key)."""
        await self._keys.update_one({"_id": key_id}, {"$set": {"last_used_at": to_millis(when)}})

    # saved searches and history

    async def create_saved_search(self, record: SavedSearchRecord) -> SavedSearchRecord:
        """Insert a saved search."""
        return await self._insert(self._saved, record)

    async def list_saved_searches(self, user_id: str) -> list[SavedSearchRecord]:
        """A user's saved searches, newest first."""
        cursor = self._saved.find({"user_id": user_id}).sort(NEWEST_FIRST)
        return [_from_doc(SavedSearchRecord, d) for d in await cursor.to_list()]

    async def delete_saved_search(self, user_id: str, search_id: str) -> bool:
        """Delete one of the user's saved searches; True when it existed."""
        result = await self._saved.delete_one({"_id": search_id, "user_id": user_id})
        return result.deleted_count > 0

    async def add_search_history(self, record: SearchHistoryRecord, *, keep: int = 100) -> None:
        """Append to a user's history, then drop everything older than the newest ``keep``.

        Insert and trim are two operations; concurrent appends for one user may
        briefly leave more than ``keep`` entries, and the next append trims them.
        """
        await self._insert(self._history, record)
        stale = (
            self._history.find({"user_id": record.user_id}, projection={"_id": True})
            .sort([("timestamp", DESCENDING), ("_id", DESCENDING)])
            .skip(max(keep, 0))
        )
        stale_ids = [d["_id"] for d in await stale.to_list()]
        if stale_ids:
            await self._history.delete_many({"_id": {"$in": stale_ids}})

    async def list_search_history(self, user_id: str, *, limit: int = 50) -> list[SearchHistoryRecord]:
        """A user's recent searches, newest first."""
        if limit <= 0:
            return []
        cursor = (
            self._history.find({"user_id": user_id}).sort([("timestamp", DESCENDING), ("_id", DESCENDING)]).limit(limit)
        )
        return [_from_doc(SearchHistoryRecord, d) for d in await cursor.to_list()]

    async def clear_search_history(self, user_id: str) -> int:
        """Delete a user's history; returns how many entries went."""
        return (await self._history.delete_many({"user_id": user_id})).deleted_count

    async def popular_searches(self, *, limit: int = 10) -> list[dict[str, Any]]:
        """``[{query, count}]`` of non-blank queries (trimmed), most frequent then most recent first."""
        if limit <= 0:
            return []
        cursor = await self._history.aggregate(
            [
                {"$project": {"q": {"$trim": {"input": {"$ifNull": ["$query", ""]}}}, "timestamp": 1}},
                {"$match": {"q": {"$ne": ""}}},
                {"$group": {"_id": "$q", "n": {"$sum": 1}, "last": {"$max": "$timestamp"}}},
                {"$sort": {"n": -1, "last": -1, "_id": 1}},
                {"$limit": limit},
            ]
        )
        return [{"query": d["_id"], "count": int(d["n"])} for d in await cursor.to_list()]

    # settings

    async def get_setting(self, key: str) -> Any | None:
        """A runtime setting (JSON value) or None."""
        doc = await self._settings.find_one({"_id": key})
        return doc["value"] if doc is not None else None

    async def set_setting(self, key: str, value: Any) -> None:
        """Store a runtime setting (JSON value), replacing any previous value."""
        await self._settings.update_one(
            {"_id": key},
            {"$set": {"value": value, "updated_at": to_millis(datetime.now(UTC))}},
            upsert=True,
        )
