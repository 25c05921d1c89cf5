"""Routes of the ingest service: uploads, files, ``POST /api/logs`` and demo data.

The Elasticsearch-compatible and OTLP routes live with their inputs
(``inputs/es_bulk.py``, ``inputs/otlp.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request

from services.ingest.deps import (
    AdminPrincipal,
    BacklogOk,
    CurrentPrincipal,
    MetaStoreDep,
    PublisherDep,
    RuntimeDep,
    SettingsDep,
)
from services.ingest.inputs.body import read_body
from services.ingest.inputs.upload import receive_upload
from services.ingest.schemas import (
    DemoDataCreate,
    DemoDataPublic,
    FileDeletedPublic,
    FilePublic,
    FilesPublic,
    LogsPublic,
    UploadPublic,
)
from services.ingest.service import (
    accept_logs,
    create_demo_data,
    delete_source_events,
    get_file,
    list_files,
    remove_stored_file,
)
from shared.errors import ApiError

router = APIRouter(tags=["ingest"])

_UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "CSV, JSON array, NDJSON or plain-text logs, each optionally gzip",
                        }
                    },
                }
            }
        },
    }
}
_NDJSON_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


async def _upload(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, principal: CurrentPrincipal
) -> UploadPublic:
    records = await receive_upload(request, settings=settings, meta=runtime.meta, principal=principal)
    for record in records:
        runtime.uploads.start(record)
    return UploadPublic(files=[FilePublic.from_record(r) for r in records])


@router.post("/api/upload", status_code=202, response_model=UploadPublic, openapi_extra=_UPLOAD_BODY)
async def upload_files(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, principal: CurrentPrincipal
) -> UploadPublic:
    """Store the uploaded files (multipart field ``file``, repeatable) and parse them in the background."""
    return await _upload(request, runtime, settings, principal)


@router.post("/api/files", status_code=202, response_model=UploadPublic, openapi_extra=_UPLOAD_BODY)
async def create_files(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, principal: CurrentPrincipal
) -> UploadPublic:
    """Alias of ``POST /api/upload``."""
    return await _upload(request, runtime, settings, principal)


@router.get("/api/files", response_model=FilesPublic)
async def read_files(meta: MetaStoreDep, principal: CurrentPrincipal) -> FilesPublic:
    """Uploaded files, newest first, with totals (a tenant key sees its tenant's files only)."""
    return await list_files(meta=meta, principal=principal)


@router.get("/api/files/{file_id}", response_model=FilePublic)
async def read_file(file_id: str, meta: MetaStoreDep, principal: CurrentPrincipal) -> FilePublic:
    """One uploaded file and its progress."""
    return await get_file(meta=meta, principal=principal, file_id=file_id)


@router.delete("/api/files/{file_id}", response_model=FileDeletedPublic)
async def delete_file(file_id: str, runtime: RuntimeDep, principal: AdminPrincipal) -> FileDeletedPublic:
    """Delete a file, its stored bytes and its events (503, file kept, if the query service is down)."""
    await get_file(meta=runtime.meta, principal=principal, file_id=file_id)  # 404 when not visible
    if await runtime.uploads.cancel(file_id):
        await runtime.meta.update_file(file_id, status="failed", failure_reason="deleted while processing")
    events_deleted = await delete_source_events(
        http=runtime.http, settings=runtime.settings, source=f"upload:{file_id}"
    )
    record = await runtime.meta.get_file(file_id)
    if record is None:
        raise ApiError(404, "file not found")
    await asyncio.to_thread(remove_stored_file, record.path, uploads_dir=runtime.uploads.uploads_dir)
    deleted = await runtime.meta.delete_file(file_id)
    return FileDeletedPublic(id=file_id, deleted=deleted, events_deleted=events_deleted)


@router.post("/api/logs", status_code=202, response_model=LogsPublic, openapi_extra=_NDJSON_BODY)
async def ingest_logs(
    request: Request,
    _: BacklogOk,
    settings: SettingsDep,
    publisher: PublisherDep,
    principal: CurrentPrincipal,
) -> LogsPublic:
    """Accept one JSON object, a JSON array or NDJSON; per-item errors by 0-based index."""
    body = await read_body(request, settings=settings, input_name="http")
    return await accept_logs(
        body=body,
        content_type=request.headers.get("content-type"),
        principal=principal,
        settings=settings,
        publisher=publisher,
    )


@router.post("/api/demo-data", status_code=202, response_model=DemoDataPublic)
async def publish_demo_data(
    data: DemoDataCreate, publisher: PublisherDep, _: AdminPrincipal, __: BacklogOk
) -> DemoDataPublic:
    """Publish generated events (source ``demo``) for the dashboard's empty state."""
    return await create_demo_data(data=data, publisher=publisher)
