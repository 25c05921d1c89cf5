"""Authentication of gateway requests (sessions and API keys) and the account operations.

Who may call what
-----------------
Every request is authenticated here, once, at the gateway:

1. API key first, when any key header is present (``Authorization: Bearer``,
   ``X-API-Key``, or ``Authorization: Basic`` with the key as password). An
   invalid key is refused (401) even when a session cookie is also sent.
2. Otherwise the ``logwarden_session`` cookie. Every such request re-reads the
   user (one metadata lookup, no cache), so a disabled or deleted user, or one
   whose password or role changed, is locked out at once.
3. Cookie-authenticated requests are CSRF-checked: a state-changing method
   (POST, PUT, PATCH, DELETE) must send ``X-CSRF-Token`` equal to the token bound
   to the session (double submit, the token is also in the readable
   ``logwarden_csrf`` cookie), and any request carrying an ``Origin`` header must
   come from ``settings.origins``. API-key requests carry no ambient credentials
   and are exempt.

Tenant keys
-----------
A key created with ``tenant_id`` yields ``Principal.tenant_id``, forwarded to the
services in ``X-Logwarden-Tenant``. The services enforce it:

- ingest STAMPS events that carry no ``tenant_id`` with the key's tenant and
  REJECTS, per record, events whose ``tenant_id`` differs, with the reason
  ``"tenant_id does not match the API key"`` (the rest of the batch is accepted);
- query restricts search, stats, export, suggest and get-by-id to that tenant
  (a get-by-id of another tenant's event is a 404, not a 403).

A tenant key can never hold the ``admin`` scope (it could mint unrestricted keys).
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from fastapi import Request
from redis.asyncio import Redis
from starlette.datastructures import Headers

from services.gateway.auth.schemas import ApiKeyCreate, UserCreate, UserUpdate
from services.gateway.auth.security import (
    api_key_matches,
    constant_time_equals,
    generate_api_key,
    hash_password_async,
    parse_api_key,
    password_needs_rehash,
    sha256_hex,
    verify_password_async,
)
from services.gateway.auth.sessions import (
    Session,
    delete_session_key,
    load_session,
    revoke_user_sessions,
    user_stamp,
)
from shared.errors import ApiError
from shared.internal import Principal
from shared.settings import Settings
from shared.store.base import DuplicateError, MetaStore
from shared.store.records import ApiKeyRecord, UserRecord

log = logging.getLogger(__name__)

SESSION_COOKIE: Final = "logwarden_session"
CSRF_COOKIE: Final = "logwarden_csrf"
CSRF_HEADER: Final = "x-csrf-token"
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_TOUCH_INTERVAL: Final = timedelta(minutes=1)
LOGIN_WINDOW_SECONDS: Final = 60
INVALID_CREDENTIALS: Final = "invalid username or password"
USERS_LOCK: Final = "logwarden:lock:users"


class CsrfError(Exception):
    """A cookie-authenticated request failed the CSRF or Origin check."""


class LastAdminError(Exception):
    """The change would leave no active admin."""


class LoginRateLimited(Exception):
    """Too many login attempts from this address or for this username."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many login attempts")
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Authenticated:
    """The result of authentication: the principal plus what it came from."""

    principal: Principal
    user: UserRecord | None = None
    session: Session | None = None
    key: ApiKeyRecord | None = None


# --- request authentication ------------------------------------------------------


def origin_allowed(origin: str | None, settings: Settings) -> bool:
    """True when there is no Origin header or it is one of ``settings.origins``."""
    if origin is None:
        return True
    return origin.rstrip("/") in settings.origins


def presented_api_key(headers: Headers) -> tuple[bool, str | None]:
    """(whether key credentials were sent, the key or None when unusable)."""
    explicit = headers.get("x-api-key")
    if explicit is not None:
        return True, explicit.strip() or None
    authorization = headers.get("authorization")
    if authorization is None:
        return False, None
    scheme, _, param = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return True, param.strip() or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(param.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return True, None
        _, sep, password = decoded.partition(":")
        return True, (password if sep else None) or None
    return True, None


async def authenticate_key(*, meta: MetaStore, key: str | None) -> Authenticated | None:
    """The key's principal, or None for a malformed, unknown or revoked key."""
    parsed = parse_api_key(key) if key else None
    if parsed is None:
        return None
    prefix, secret = parsed
    record = await meta.get_api_key_by_prefix(prefix)
    if record is None or not api_key_matches(secret, record.key_hash):
        return None
    now = datetime.now(UTC)
    if record.last_used_at is None or now - record.last_used_at >= KEY_TOUCH_INTERVAL:
        await meta.touch_api_key(record.id, now)  # throttled: at most one write a minute per key
    principal = Principal(
        kind="key",
        id=record.id,
        name=record.name,
        scopes=frozenset(record.scopes),
        tenant_id=record.tenant_id,
    )
    return Authenticated(principal=principal, key=record)


async def authenticate_session(
    *, meta: MetaStore, redis: Redis, settings: Settings, session_id: str | None
) -> Authenticated | None:
    """The session's user principal, or None when the session or the user is gone."""
    if not session_id:
        return None
    session = await load_session(redis=redis, settings=settings, session_id=session_id)
    if session is None:
        return None
    user = await meta.get_user(session.user_id)
    if user is None or user.disabled:
        await revoke_user_sessions(redis=redis, user_id=session.user_id)
        return None
    if not constant_time_equals(session.stamp, user_stamp(user)):
        # Password or role changed since login (possibly through the CLI).
        await revoke_user_sessions(redis=redis, user_id=session.user_id)
        await delete_session_key(redis=redis, key=session.key, user_id=user.id)
        return None
    principal = Principal(kind="user", id=user.id, name=user.username, role=user.role)
    return Authenticated(principal=principal, user=user, session=session)


async def authenticate(
    headers: Headers,
    *,
    method: str,
    meta: MetaStore,
    redis: Redis,
    settings: Settings,
    check_csrf_token: bool = True,
) -> Authenticated | None:
    """Authenticate from headers alone: API key first, else the session cookie.

    Raises :class:`CsrfError` when a cookie-authenticated request fails the CSRF
    checks; returns None when there are no valid credentials.
    """
    sent_key, key = presented_api_key(headers)
    if sent_key:
        return await authenticate_key(meta=meta, key=key)
    session_id = _cookie(headers, SESSION_COOKIE)
    result = await authenticate_session(meta=meta, redis=redis, settings=settings, session_id=session_id)
    if result is None:
        return None
    assert result.session is not None
    if not origin_allowed(headers.get("origin"), settings):
        raise CsrfError("cross-origin request refused")
    if check_csrf_token and method.upper() in UNSAFE_METHODS:
        if not constant_time_equals(headers.get(CSRF_HEADER), result.session.csrf_token):
            raise CsrfError("missing or invalid CSRF token (send the X-CSRF-Token header)")
    return result


def _cookie(headers: Headers, name: str) -> str | None:
    """One cookie's value from the Cookie header(s)."""
    for header in headers.getlist("cookie"):
        for part in header.split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value.strip().strip('"') or None
    return None


async def authenticate_request(request: Request) -> Principal | None:
    """The caller's principal from an API key or the session cookie; None when anonymous.

    Raises ApiError 403 when a cookie-authenticated request fails the CSRF checks.
    The user record, session and key are left on ``request.state`` for handlers.
    """
    cached: Authenticated | None = getattr(request.state, "auth", None)
    if cached is not None:
        return cached.principal
    state = request.app.state
    try:
        result = await authenticate(
            request.headers, method=request.method, meta=state.meta, redis=state.redis, settings=state.settings
        )
    except CsrfError as exc:
        raise ApiError(403, str(exc), code="csrf_failed") from exc
    if result is None:
        return None
    request.state.auth = result
    return result.principal


async def authenticate_headers(
    headers: Iterable[tuple[bytes, bytes]] | Mapping[str, str], *, app_state: Any
) -> Principal | None:
    """Authenticate a raw ASGI request (e.g. the Socket.IO handshake) from its headers.

    ``headers`` is ``scope["headers"]`` (or a str mapping); ``app_state`` is the
    gateway's ``app.state`` (``meta``, ``redis``, ``settings``). Cookie sessions
    must come from an allowed Origin (cross-site WebSocket hijacking); the
    X-CSRF-Token check is not applied, as for any GET. Returns None when
    anonymous, invalid or refused.
    """
    parsed = Headers(headers=dict(headers)) if isinstance(headers, Mapping) else Headers(raw=list(headers))
    try:
        result = await authenticate(
            parsed,
            method="GET",
            meta=app_state.meta,
            redis=app_state.redis,
            settings=app_state.settings,
            check_csrf_token=False,
        )
    except CsrfError:
        return None
    return result.principal if result is not None else None


# --- login ---------------------------------------------------------------------


async def enforce_login_rate(*, redis: Redis, settings: Settings, client_ip: str, username: str) -> None:
    """Count one login attempt per address and per username; raise when over the limit."""
    keys = (
        f"logwarden:login-rate:ip:{client_ip}",
        f"logwarden:login-rate:user:{sha256_hex(username.strip().lower())}",
    )
    async with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.set(key, 0, ex=LOGIN_WINDOW_SECONDS, nx=True)
            pipe.incr(key)
            pipe.ttl(key)
        results = await pipe.execute()
    retry_after = 0
    for index in range(len(keys)):
        count, ttl = int(results[index * 3 + 1]), int(results[index * 3 + 2])
        if count > settings.login_attempts_per_minute:
            retry_after = max(retry_after, ttl if ttl > 0 else LOGIN_WINDOW_SECONDS)
    if retry_after:
        raise LoginRateLimited(retry_after)


async def verify_credentials(*, meta: MetaStore, username: str, password: str) -> UserRecord | None:
    """The active user with these credentials, else None.

    Unknown users cost a dummy hash verification and disabled users a real one,
    so neither the answer nor its timing tells whether a username exists.
    """
    user = await meta.get_user_by_username(username.strip())
    ok = await verify_password_async(user.password_hash if user else None, password)
    if user is None or not ok or user.disabled:
        return None
    changes: dict[str, Any] = {"last_login": datetime.now(UTC)}
    if password_needs_rehash(user.password_hash):
        changes["password_hash"] = await hash_password_async(password)
    updated = await meta.update_user(user.id, **changes)
    return updated or user


# --- users -------------------------------------------------------------------------


def _is_active_admin(user: UserRecord) -> bool:
    return user.role == "admin" and not user.disabled


async def count_active_admins(*, meta: MetaStore) -> int:
    """How many enabled admins exist."""
    return sum(1 for u in await meta.list_users() if _is_active_admin(u))


async def create_user(*, meta: MetaStore, data: UserCreate) -> UserRecord:
    """Create a user (DuplicateError when the username or email is taken)."""
    record = UserRecord(
        username=data.username,
        email=data.email,
        password_hash=await hash_password_async(data.password),
        role=data.role,
    )
    return await meta.create_user(record)


async def update_user(*, meta: MetaStore, redis: Redis | None, user: UserRecord, data: UserUpdate) -> UserRecord:
    """Apply changes; revokes the user's sessions when disabled, re-roled or re-passworded.

    Raises LastAdminError when it would demote or disable the last active admin.
    """
    changes: dict[str, Any] = {}
    fields = data.model_fields_set
    if "email" in fields:
        changes["email"] = data.email
    if data.role is not None and data.role != user.role:
        changes["role"] = data.role
    if data.disabled is not None and data.disabled != user.disabled:
        changes["disabled"] = data.disabled
    if data.password is not None:
        changes["password_hash"] = await hash_password_async(data.password)
    after = user.model_copy(update=changes)
    if _is_active_admin(user) and not _is_active_admin(after) and await count_active_admins(meta=meta) <= 1:
        raise LastAdminError("this is the last active admin")
    updated = await meta.update_user(user.id, **changes) if changes else user
    if updated is None:
        raise LookupError(user.id)
    if redis is not None and ({"role", "disabled", "password_hash"} & changes.keys()):
        await revoke_user_sessions(redis=redis, user_id=user.id)
    return updated


async def delete_user(*, meta: MetaStore, redis: Redis | None, user: UserRecord) -> None:
    """Delete a user and end their sessions; LastAdminError for the last active admin."""
    if _is_active_admin(user) and await count_active_admins(meta=meta) <= 1:
        raise LastAdminError("this is the last active admin")
    await meta.delete_user(user.id)
    if redis is not None:
        await revoke_user_sessions(redis=redis, user_id=user.id)


async def ensure_first_admin(*, meta: MetaStore, settings: Settings) -> tuple[str, str | None]:
    """Create the first admin when there is no user at all.

    Uses LOGWARDEN_ADMIN_USERNAME / LOGWARDEN_ADMIN_PASSWORD when set, else
    ``admin`` with a random password, which is returned so the caller can show
    it once. Returns (username, None) when users already exist, when the
    password came from the environment, or when another process won the race.
    """
    username = settings.admin_username or "admin"
    if await meta.count_users() > 0:
        admins = [u for u in await meta.list_users() if u.role == "admin"]
        return (admins[0].username if admins else username), None
    generated = settings.admin_password is None
    password = (
        secrets.token_urlsafe(18) if settings.admin_password is None else (settings.admin_password.get_secret_value())
    )
    record = UserRecord(username=username, password_hash=await hash_password_async(password), role="admin")
    try:
        await meta.create_user(record)
    except DuplicateError:
        return username, None  # another process created it first
    log.info("created the first admin user %r", username)
    return username, password if generated else None


# --- api keys ------------------------------------------------------------------------


async def create_api_key(*, meta: MetaStore, data: ApiKeyCreate, created_by: str | None) -> tuple[ApiKeyRecord, str]:
    """Create a key; returns the stored record and the full key (to show once)."""
    for _ in range(5):
        new = generate_api_key()
        record = ApiKeyRecord(
            name=data.name,
            prefix=new.prefix,
            key_hash=new.key_hash,
            scopes=list(data.scopes),
            tenant_id=data.tenant_id,
            created_by=created_by,
        )
        try:
            return await meta.create_api_key(record), new.key
        except DuplicateError:
            continue  # prefix collision: draw another
    raise RuntimeError("could not allocate a unique API key prefix")


async def revoke_api_key(*, meta: MetaStore, key_id: str) -> bool:
    """Delete a key; it stops working on the next request (keys are not cached)."""
    return await meta.delete_api_key(key_id)
