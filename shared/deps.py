"""Dependencies every service uses: what its lifespan opened, and who is calling.

Each service's ``deps.py`` re-exports these aliases beside its own. The
lifespans keep ``settings``, ``redis`` and ``meta`` on ``app.state``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from shared.errors import ApiError
from shared.internal import Principal
from shared.settings import Settings
from shared.store.base import MetaStore


def get_settings(request: Request) -> Settings:
    """The service's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_redis(request: Request) -> Redis:
    """The Redis client opened by the lifespan."""
    redis: Redis = request.app.state.redis
    return redis


def get_meta_store(request: Request) -> MetaStore:
    """The MetaStore opened by the lifespan."""
    meta: MetaStore = request.app.state.meta
    return meta


def get_forwarded_principal(request: Request) -> Principal:
    """The caller the gateway forwarded (the internal token was checked by middleware); 401 if none."""
    principal = Principal.from_headers(dict(request.headers))
    if principal is None:
        raise ApiError(401, "no caller identity was forwarded")
    return principal


def get_forwarded_admin(request: Request) -> Principal:
    """The forwarded caller if admin, else 403 (the gateway checks too: defence in depth)."""
    principal = get_forwarded_principal(request)
    if not principal.is_admin:
        raise ApiError(403, "this action needs the admin role")
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings)]
RedisDep = Annotated[Redis, Depends(get_redis)]
MetaStoreDep = Annotated[MetaStore, Depends(get_meta_store)]
ForwardedPrincipal = Annotated[Principal, Depends(get_forwarded_principal)]
ForwardedAdmin = Annotated[Principal, Depends(get_forwarded_admin)]
