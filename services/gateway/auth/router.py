"""Gateway-local routes: login/logout/me, users (admin) and API keys (admin)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Request, Response
from redis.asyncio import Redis
from redis.exceptions import LockError

from services.gateway.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    ApiKeysPublic,
    LoginRequest,
    LoginResponse,
    PrincipalPublic,
    UserCreate,
    UserPublic,
    UsersPublic,
    UserUpdate,
)
from services.gateway.auth.service import (
    CSRF_COOKIE,
    INVALID_CREDENTIALS,
    SESSION_COOKIE,
    USERS_LOCK,
    Authenticated,
    LastAdminError,
    LoginRateLimited,
    create_api_key,
    create_user,
    delete_user,
    enforce_login_rate,
    origin_allowed,
    revoke_api_key,
    update_user,
    verify_credentials,
)
from services.gateway.auth.sessions import create_session, revoke_session
from services.gateway.deps import AdminPrincipal, CurrentPrincipal, MetaStoreDep, RedisDep, SettingsDep
from shared.errors import ApiError
from shared.settings import Settings
from shared.store.base import DuplicateError
from shared.store.records import ApiKeyRecord, UserRecord

auth_router = APIRouter(prefix="/api/auth", tags=["auth"])
users_router = APIRouter(prefix="/api/users", tags=["users"])
keys_router = APIRouter(prefix="/api/keys", tags=["api keys"])

_LAST_ADMIN = "cannot delete, demote or disable the last active admin"


def user_public(user: UserRecord) -> UserPublic:
    """The public view of a user record."""
    return UserPublic.model_validate(user.model_dump())


def key_public(key: ApiKeyRecord) -> ApiKeyPublic:
    """The public view of a key record (no hash, no secret)."""
    return ApiKeyPublic.model_validate(key.model_dump(exclude={"key_hash"}))


def _set_session_cookies(response: Response, *, settings: Settings, session_id: str, csrf_token: str) -> None:
    max_age = settings.session_max_hours * 3600
    response.set_cookie(
        SESSION_COOKIE,
        session_id,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.secure_cookies,
    )
    # Readable by the page's JavaScript, which echoes it in X-CSRF-Token.
    response.set_cookie(
        CSRF_COOKIE,
        csrf_token,
        max_age=max_age,
        path="/",
        httponly=False,
        samesite="lax",
        secure=settings.secure_cookies,
    )


def _clear_session_cookies(response: Response, *, settings: Settings) -> None:
    for name, httponly in ((SESSION_COOKIE, True), (CSRF_COOKIE, False)):
        response.delete_cookie(name, path="/", httponly=httponly, samesite="lax", secure=settings.secure_cookies)


@asynccontextmanager
async def _users_locked(redis: Redis) -> AsyncIterator[None]:
    """Serialise user changes across gateway processes (the last-admin rule reads then writes)."""
    try:
        async with redis.lock(USERS_LOCK, timeout=30, blocking_timeout=10):
            yield
    except LockError as exc:
        raise ApiError(503, "user administration is busy, try again") from exc


# --- auth ---------------------------------------------------------------------------


@auth_router.post(
    "/login",
    response_model=LoginResponse,
    summary="Log in",
    description="Starts a session: sets the HttpOnly `logwarden_session` cookie and the readable "
    "`logwarden_csrf` cookie. Send the CSRF token as `X-CSRF-Token` on every write.",
    responses={401: {"description": "invalid username or password"}, 429: {"description": "rate limited"}},
)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    meta: MetaStoreDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> LoginResponse:
    """Check credentials (rate limited per address and username) and start a session."""
    if not origin_allowed(request.headers.get("origin"), settings):
        raise ApiError(403, "cross-origin login refused", code="csrf_failed")
    client_ip = request.client.host if request.client else "unknown"
    try:
        await enforce_login_rate(redis=redis, settings=settings, client_ip=client_ip, username=body.username)
    except LoginRateLimited as exc:
        raise ApiError(
            429, "too many login attempts, try again later", headers={"Retry-After": str(exc.retry_after)}
        ) from exc
    user = await verify_credentials(meta=meta, username=body.username, password=body.password)
    if user is None:
        raise ApiError(401, INVALID_CREDENTIALS, code="invalid_credentials")
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:
        await revoke_session(redis=redis, session_id=previous)  # a fresh id on every login
    session_id, session = await create_session(redis=redis, settings=settings, user=user)
    _set_session_cookies(response, settings=settings, session_id=session_id, csrf_token=session.csrf_token)
    return LoginResponse(user=user_public(user), csrf_token=session.csrf_token)


@auth_router.post("/logout", status_code=204, summary="Log out", description="Ends the current session.")
async def logout(
    request: Request, response: Response, _: CurrentPrincipal, redis: RedisDep, settings: SettingsDep
) -> None:
    """Revoke the session of the cookie and clear the cookies."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if session_id:
        await revoke_session(redis=redis, session_id=session_id)
    _clear_session_cookies(response, settings=settings)


@auth_router.get("/me", response_model=PrincipalPublic, summary="Who am I")
async def me(request: Request, principal: CurrentPrincipal) -> PrincipalPublic:
    """The authenticated caller (user or API key)."""
    auth: Authenticated = request.state.auth
    return PrincipalPublic(
        kind=principal.kind,
        id=principal.id,
        name=principal.name,
        role=auth.user.role if auth.user else None,
        scopes=sorted(principal.scopes),
        tenant_id=principal.tenant_id,
        user=user_public(auth.user) if auth.user else None,
    )


# --- users ----------------------------------------------------------------------------


@users_router.get("", response_model=UsersPublic, summary="List users")
async def list_users(_: AdminPrincipal, meta: MetaStoreDep) -> UsersPublic:
    """Every user, oldest first."""
    users = await meta.list_users()
    return UsersPublic(data=[user_public(u) for u in users], count=len(users))


@users_router.post(
    "",
    response_model=UserPublic,
    status_code=201,
    summary="Create a user",
    responses={409: {"description": "username or email taken"}},
)
async def post_user(body: UserCreate, _: AdminPrincipal, meta: MetaStoreDep) -> UserPublic:
    """Create a user with a role."""
    try:
        user = await create_user(meta=meta, data=body)
    except DuplicateError as exc:
        raise ApiError(409, "username or email already in use") from exc
    return user_public(user)


@users_router.patch(
    "/{user_id}",
    response_model=UserPublic,
    summary="Update a user",
    responses={404: {"description": "no such user"}, 409: {"description": "last admin"}},
)
async def patch_user(
    user_id: str, body: UserUpdate, _: AdminPrincipal, meta: MetaStoreDep, redis: RedisDep
) -> UserPublic:
    """Change email, password, role or disabled; ends the user's sessions on security changes."""
    async with _users_locked(redis):
        user = await meta.get_user(user_id)
        if user is None:
            raise ApiError(404, "no such user")
        try:
            updated = await update_user(meta=meta, redis=redis, user=user, data=body)
        except LastAdminError as exc:
            raise ApiError(409, _LAST_ADMIN) from exc
        except DuplicateError as exc:
            raise ApiError(409, "username or email already in use") from exc
        except LookupError as exc:
            raise ApiError(404, "no such user") from exc
    return user_public(updated)


@users_router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user",
    responses={404: {"description": "no such user"}, 409: {"description": "last admin"}},
)
async def remove_user(user_id: str, _: AdminPrincipal, meta: MetaStoreDep, redis: RedisDep) -> None:
    """Delete a user and end their sessions."""
    async with _users_locked(redis):
        user = await meta.get_user(user_id)
        if user is None:
            raise ApiError(404, "no such user")
        try:
            await delete_user(meta=meta, redis=redis, user=user)
        except LastAdminError as exc:
            raise ApiError(409, _LAST_ADMIN) from exc


# --- api keys ---------------------------------------------------------------------------


@keys_router.post(
    "",
    response_model=ApiKeyCreated,
    status_code=201,
    summary="Create an API key",
    description="The full key is in this response only; it cannot be retrieved later.",
)
async def post_key(body: ApiKeyCreate, principal: AdminPrincipal, meta: MetaStoreDep) -> ApiKeyCreated:
    """Create a key and show it once."""
    record, key = await create_api_key(meta=meta, data=body, created_by=f"{principal.kind}:{principal.name}")
    return ApiKeyCreated(**key_public(record).model_dump(), key=key)


@keys_router.get("", response_model=ApiKeysPublic, summary="List API keys")
async def list_keys(_: AdminPrincipal, meta: MetaStoreDep) -> ApiKeysPublic:
    """Every key, newest first, without secrets."""
    keys = await meta.list_api_keys()
    return ApiKeysPublic(data=[key_public(k) for k in keys], count=len(keys))


@keys_router.delete(
    "/{key_id}", status_code=204, summary="Revoke an API key", responses={404: {"description": "no such key"}}
)
async def delete_key(key_id: str, _: AdminPrincipal, meta: MetaStoreDep) -> None:
    """Revoke a key; it stops working immediately."""
    if not await revoke_api_key(meta=meta, key_id=key_id):
        raise ApiError(404, "no such key")


router = APIRouter()
router.include_router(auth_router)
router.include_router(users_router)
router.include_router(keys_router)
