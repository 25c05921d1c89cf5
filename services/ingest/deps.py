"""Annotated dependency aliases for the ingest routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.ingest.dependencies import (
    check_backlog,
    get_admin,
    get_gate,
    get_meta_store,
    get_principal,
    get_publisher,
    get_runtime,
    get_settings,
)
from services.ingest.publish import BacklogGate, Publisher
from services.ingest.runtime import IngestRuntime
from shared.internal import Principal
from shared.settings import Settings
from shared.store.base import MetaStore

RuntimeDep = Annotated[IngestRuntime, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetaStoreDep = Annotated[MetaStore, Depends(get_meta_store)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
GateDep = Annotated[BacklogGate, Depends(get_gate)]
CurrentPrincipal = Annotated[Principal, Depends(get_principal)]
AdminPrincipal = Annotated[Principal, Depends(get_admin)]
BacklogOk = Annotated[None, Depends(check_backlog)]
