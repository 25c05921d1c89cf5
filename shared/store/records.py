"""Metadata records kept by the MetaStore (files, users, keys, searches, settings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from shared.models import new_event_id, utc_now

Role = Literal["admin", "analyst", "viewer"]
Scope = Literal["ingest", "read", "admin"]
FileStatus = Literal["uploaded", "processing", "indexed", "failed"]


def new_id() -> str:
    """A fresh ULID string for a metadata record."""
    return new_event_id()


class FileRecord(BaseModel):
    """An uploaded file and its processing progress."""

    id: str = Field(default_factory=new_id)
    filename: str
    file_type: str = ""
    file_size: int = 0
    format: str | None = None
    status: FileStatus = "uploaded"
    uploaded_at: datetime = Field(default_factory=utc_now)
    uploaded_by: str | None = None
    tenant_id: str | None = None
    records_count: int = 0
    rejected_count: int = 0
    indexed_count: int = 0
    errors: list[dict[str, Any]] = Field(default_factory=list)
    failure_reason: str | None = None
    path: str | None = None


class UserRecord(BaseModel):
    """A person who logs in to the dashboard."""

    id: str = Field(default_factory=new_id)
    username: str
    email: str | None = None
    password_hash: str
    role: Role = "viewer"
    disabled: bool = False
    created_at: datetime = Field(default_factory=utc_now)
    last_login: datetime | None = None


class ApiKeyRecord(BaseModel):
    """An API key; only the hash of its secret is stored."""

    id: str = Field(default_factory=new_id)
    name: str
    prefix: str
    key_hash: str
    scopes: list[Scope]
    tenant_id: str | None = None
    created_at: datetime = Field(default_factory=utc_now)
    created_by: str | None = None
    last_used_at: datetime | None = None


class SavedSearchRecord(BaseModel):
    """A named search a user kept."""

    id: str = Field(default_factory=new_id)
    user_id: str
    name: str
    query: str = ""
    filters: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utc_now)


class SearchHistoryRecord(BaseModel):
    """One search a user ran."""

    id: str = Field(default_factory=new_id)
    user_id: str
    query: str = ""
    filters: dict[str, Any] = Field(default_factory=dict)
    results_count: int = 0
    timestamp: datetime = Field(default_factory=utc_now)
