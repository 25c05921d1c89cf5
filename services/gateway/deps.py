"""Annotated dependency aliases for the gateway's own routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.gateway.auth.dependencies import require_permission, require_principal
from shared.deps import MetaStoreDep as MetaStoreDep  # re-exported for the routers
from shared.deps import RedisDep as RedisDep
from shared.deps import SettingsDep as SettingsDep
from shared.internal import Principal

CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
ReadPrincipal = Annotated[Principal, Depends(require_permission("read"))]
AdminPrincipal = Annotated[Principal, Depends(require_permission("admin"))]
