"""The trust boundary between the gateway and the services.

The gateway authenticates the caller and forwards who they are in
``X-Logwarden-*`` headers together with the shared internal token. Services
accept those headers only when the token matches, and refuse every other
request except health and metrics, so reaching a service port directly gets
nothing.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Final

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import error_body

TOKEN_HEADER: Final = "x-logwarden-internal-token"
USER_ID_HEADER: Final = "x-logwarden-user-id"
USERNAME_HEADER: Final = "x-logwarden-username"
ROLE_HEADER: Final = "x-logwarden-role"
SCOPES_HEADER: Final = "x-logwarden-scopes"
TENANT_HEADER: Final = "x-logwarden-tenant"
KIND_HEADER: Final = "x-logwarden-principal"
INTERNAL_HEADERS: Final = frozenset(
    {TOKEN_HEADER, USER_ID_HEADER, USERNAME_HEADER, ROLE_HEADER, SCOPES_HEADER, TENANT_HEADER, KIND_HEADER}
)
OPEN_PATHS: Final = frozenset({"/health", "/health/live", "/metrics"})


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, as established by the gateway."""

    kind: str  # "user", "key" or "system"
    id: str
    name: str
    role: str | None = None
    scopes: frozenset[str] = frozenset()
    tenant_id: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admins (users) or keys with the admin scope."""
        return self.role == "admin" or "admin" in self.scopes

    def headers(self, token: str) -> dict[str, str]:
        """The internal headers that carry this principal to a service."""
        headers = {
            TOKEN_HEADER: token,
            KIND_HEADER: self.kind,
            USER_ID_HEADER: self.id,
            USERNAME_HEADER: self.name,
            SCOPES_HEADER: ",".join(sorted(self.scopes)),
        }
        if self.role:
            headers[ROLE_HEADER] = self.role
        if self.tenant_id:
            headers[TENANT_HEADER] = self.tenant_id
        return headers

    @classmethod
    def from_headers(cls, headers: dict[str, str]) -> Principal | None:
        """Rebuild the principal on the service side (headers already token-checked)."""
        principal_id = headers.get(USER_ID_HEADER)
        if not principal_id:
            return None
        scopes = frozenset(s for s in headers.get(SCOPES_HEADER, "").split(",") if s)
        return cls(
            kind=headers.get(KIND_HEADER, "user"),
            id=principal_id,
            name=headers.get(USERNAME_HEADER, principal_id),
            role=headers.get(ROLE_HEADER) or None,
            scopes=scopes,
            tenant_id=headers.get(TENANT_HEADER) or None,
        )


SYSTEM = Principal(kind="system", id="system", name="system", role="admin", scopes=frozenset({"admin"}))


def token_matches(presented: str | None, expected: str) -> bool:
    """Constant-time comparison of the internal token."""
    if not presented:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


class InternalTokenMiddleware:
    """Pure ASGI middleware refusing requests that did not come through the gateway."""

    def __init__(self, app: ASGIApp, *, token: str, open_paths: frozenset[str] = OPEN_PATHS) -> None:
        self._app = app
        self._token = token
        self._open_paths = open_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the token on http/websocket scopes, then pass through."""
        if scope["type"] not in ("http", "websocket") or scope["path"] in self._open_paths:
            await self._app(scope, receive, send)
            return
        presented = None
        for name, value in scope.get("headers", []):
            if name == TOKEN_HEADER.encode():
                presented = value.decode("latin-1")
                break
        if token_matches(presented, self._token):
            await self._app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = orjson.dumps(error_body(401, "requests must come through the gateway"))
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})
