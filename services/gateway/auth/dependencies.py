"""FastAPI dependencies that authenticate the caller and check a permission."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from fastapi import Request

from services.gateway.auth.permissions import allowed
from services.gateway.auth.service import authenticate_request
from services.gateway.routes import Permission
from shared.errors import ApiError
from shared.internal import Principal

_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="logwarden"'}


async def require_principal(request: Request) -> Principal:
    """A dependency resolving the caller; 401 when anonymous (any principal passes)."""
    principal = await authenticate_request(request)
    if principal is None:
        raise ApiError(401, "authentication required", headers=_CHALLENGE)
    request.state.principal = principal
    return principal


def require_permission(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency resolving the caller, 401 when anonymous, 403 when not allowed."""

    async def dependency(request: Request) -> Principal:
        principal = await require_principal(request)
        if not allowed(principal, permission):
            raise ApiError(403, "not allowed for your role or key scopes")
        return principal

    dependency.__name__ = f"require_{permission}"
    return dependency
