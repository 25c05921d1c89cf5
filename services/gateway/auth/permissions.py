"""Which principal may do what (the role/scope model of DESIGN.md §5)."""

from __future__ import annotations

from services.gateway.routes import Permission
from shared.internal import Principal

_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "analyst": frozenset({"read", "ingest", "upload", "personal"}),
    "admin": frozenset({"read", "ingest", "upload", "personal", "admin"}),
}
_SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "read": frozenset({"read"}),
    "ingest": frozenset({"ingest", "upload"}),
    "admin": frozenset({"read", "ingest", "upload", "admin"}),
}


def allowed(principal: Principal, permission: Permission) -> bool:
    """Whether ``principal`` holds ``permission``."""
    if principal.kind == "user":
        return permission in _ROLE_PERMISSIONS.get(principal.role or "", frozenset())
    granted: set[str] = set()
    for scope in principal.scopes:
        granted |= _SCOPE_PERMISSIONS.get(scope, frozenset())
    return permission in granted
