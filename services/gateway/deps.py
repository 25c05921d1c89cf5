"""Annotated dependency aliases for the gateway's own routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from services.gateway.auth.dependencies import require_permission, require_principal
from shared.internal import Principal
from shared.settings import Settings
from shared.store.base import MetaStore


def get_redis(request: Request) -> Redis:
    """The gateway's Redis client (opened in the lifespan)."""
    redis: Redis = request.app.state.redis
    return redis


def get_meta_store(request: Request) -> MetaStore:
    """The gateway's MetaStore (opened in the lifespan)."""
    meta: MetaStore = request.app.state.meta
    return meta


def get_settings(request: Request) -> Settings:
    """The gateway's settings."""
    settings: Settings = request.app.state.settings
    return settings


RedisDep = Annotated[Redis, Depends(get_redis)]
MetaStoreDep = Annotated[MetaStore, Depends(get_meta_store)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
CurrentPrincipal = Annotated[Principal, Depends(require_principal)]
ReadPrincipal = Annotated[Principal, Depends(require_permission("read"))]
AdminPrincipal = Annotated[Principal, Depends(require_permission("admin"))]
