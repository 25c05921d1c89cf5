"""Request and response bodies of the auth, users and API key routes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.gateway.auth.security import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from shared.store.records import Role, Scope

Username = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
]
Email = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
]
NewPassword = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
TenantId = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    """Credentials for ``POST /api/auth/login``."""

    username: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]


class UserPublic(BaseModel):
    """A user as shown to admins and to the user themself (never the hash)."""

    id: str
    username: str
    email: str | None = None
    role: Role
    disabled: bool
    created_at: datetime
    last_login: datetime | None = None


class UsersPublic(BaseModel):
    """A list of users."""

    data: list[UserPublic]
    count: int


class LoginResponse(BaseModel):
    """Who logged in and the CSRF token to send as ``X-CSRF-Token`` on writes."""

    user: UserPublic
    csrf_token: str


class PrincipalPublic(BaseModel):
    """The caller, as the gateway authenticated them (``GET /api/auth/me``)."""

    kind: str = Field(description='"user" (session) or "key" (API key)')
    id: str
    name: str
    role: Role | None = None
    scopes: list[Scope] = Field(default_factory=list)
    tenant_id: str | None = None
    user: UserPublic | None = None


class UserCreate(_Strict):
    """A new user (admin only)."""

    username: Username
    email: Email | None = None
    password: NewPassword
    role: Role = "viewer"


class UserUpdate(_Strict):
    """Changes to a user (admin only); omitted fields stay as they are."""

    email: Email | None = None
    password: NewPassword | None = None
    role: Role | None = None
    disabled: bool | None = None


class ApiKeyCreate(_Strict):
    """A new API key (admin only)."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=3)]
    tenant_id: TenantId | None = None

    @model_validator(mode="after")
    def _tenant_keys_are_not_admin(self) -> ApiKeyCreate:
        # An admin key could mint an unrestricted key or user: a tenant key with it
        # would not stay inside its tenant.
        if self.tenant_id is not None and "admin" in self.scopes:
            raise ValueError("a key restricted to a tenant cannot have the admin scope")
        self.scopes = sorted(set(self.scopes))
        return self


class ApiKeyPublic(BaseModel):
    """An API key without its secret (the secret is never retrievable)."""

    id: str
    name: str
    prefix: str
    scopes: list[Scope]
    tenant_id: str | None = None
    created_at: datetime
    created_by: str | None = None
    last_used_at: datetime | None = None


class ApiKeysPublic(BaseModel):
    """A list of API keys."""

    data: list[ApiKeyPublic]
    count: int


class ApiKeyCreated(ApiKeyPublic):
    """A key just created: ``key`` is shown this once and never again."""

    key: str = Field(description="The full key; store it now, it cannot be retrieved later.")
