"""Annotated dependency aliases for the ingest routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.ingest.dependencies import (
    check_backlog,
    get_gate,
    get_meta_store,
    get_publisher,
    get_runtime,
)
from services.ingest.publish import BacklogGate, Publisher
from services.ingest.runtime import IngestRuntime
from shared.deps import ForwardedAdmin, ForwardedPrincipal
from shared.deps import SettingsDep as SettingsDep  # re-exported for the routers
from shared.store.base import MetaStore

RuntimeDep = Annotated[IngestRuntime, Depends(get_runtime)]
MetaStoreDep = Annotated[MetaStore, Depends(get_meta_store)]
PublisherDep = Annotated[Publisher, Depends(get_publisher)]
GateDep = Annotated[BacklogGate, Depends(get_gate)]
CurrentPrincipal = ForwardedPrincipal
AdminPrincipal = ForwardedAdmin
BacklogOk = Annotated[None, Depends(check_backlog)]
