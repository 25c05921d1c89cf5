"""Request and response bodies of the ingest routes (DESIGN.md §5 Ingest)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shared.store.records import FileRecord, FileStatus


class LineErrorPublic(BaseModel):
    """One record of a file that could not become an event."""

    line: int
    reason: str


class FilePublic(BaseModel):
    """An uploaded file and its processing progress, as the files page shows it."""

    id: str
    filename: str
    file_type: str
    file_size: int
    format: str | None = None
    status: FileStatus
    uploaded_at: datetime
    uploaded_by: str | None = None
    tenant_id: str | None = None
    records_count: int
    rejected_count: int
    indexed_count: int
    errors: list[LineErrorPublic] = Field(default_factory=list)
    failure_reason: str | None = None

    @classmethod
    def from_record(cls, record: FileRecord) -> FilePublic:
        """The public view of a file record (never the server-side path)."""
        return cls.model_validate(record.model_dump(exclude={"path"}))


class FileStatsPublic(BaseModel):
    """Totals over the caller's files; ``total_logs`` counts indexed (searchable) events."""

    total_files: int
    total_logs: int
    total_size: int


class FilesPublic(BaseModel):
    """``GET /api/files``."""

    files: list[FilePublic]
    stats: FileStatsPublic


class UploadPublic(BaseModel):
    """``POST /api/upload``: the stored files; parsing goes on in the background."""

    files: list[FilePublic]


class IndexErrorPublic(BaseModel):
    """One item of a ``POST /api/logs`` body that was refused (0-based index)."""

    index: int
    reason: str


class LogsPublic(BaseModel):
    """``POST /api/logs``: how many events were accepted and why others were not (first 100)."""

    accepted: int
    rejected: int
    errors: list[IndexErrorPublic]


class DemoDataCreate(BaseModel):
    """``POST /api/demo-data``: how many generated events, spread over how many days."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(10_000, ge=1, le=100_000)
    days: float = Field(1.0, gt=0, le=365)
    seed: int | None = None


class DemoDataPublic(BaseModel):
    """What ``POST /api/demo-data`` published."""

    published: int
    source: str


class FileDeletedPublic(BaseModel):
    """``DELETE /api/files/{file_id}``."""

    id: str
    deleted: bool
    events_deleted: int | None = None
