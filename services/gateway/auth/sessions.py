"""Browser sessions in Redis: opaque ids, idle and absolute expiry, per-user revocation.

A session id is 256 random bits held only by the browser (HttpOnly cookie).
Redis keys use its SHA-256, so a Redis dump or ``MONITOR`` does not hand out
live sessions:

- ``logwarden:session:<sha256(id)>``: hash ``{user_id, created_at, csrf, stamp}``
  whose TTL is the idle timeout, refreshed on every use (capped by the absolute
  lifetime, which is also checked on use);
- ``logwarden:user-sessions:<user_id>``: set of that user's session hashes, so
  disabling, deleting, demoting a user or changing their password revokes all.

``stamp`` is a digest of the user's password hash and role at login; a session
whose stamp no longer matches the user is refused and deleted. That makes a
password or role change made while Redis was unreachable (the operator CLI)
still end the user's sessions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Final

from redis.asyncio import Redis

from services.gateway.auth.security import random_token, sha256_hex
from shared.settings import Settings
from shared.store.records import UserRecord

SESSION_KEY: Final = "logwarden:session:"
USER_SESSIONS_KEY: Final = "logwarden:user-sessions:"


@dataclass(frozen=True, slots=True)
class Session:
    """A live session as stored (the id itself is never stored)."""

    key: str
    user_id: str
    created_at: float
    csrf_token: str
    stamp: str


def session_key(session_id: str) -> str:
    """The Redis key of a session id."""
    return SESSION_KEY + sha256_hex(session_id)


def user_stamp(user: UserRecord) -> str:
    """Digest of what a session depends on: changes when the password or role changes."""
    return sha256_hex(f"{user.password_hash}|{user.role}")[:32]


def _idle_seconds(settings: Settings) -> int:
    return settings.session_idle_minutes * 60


def _max_seconds(settings: Settings) -> int:
    return settings.session_max_hours * 3600


async def create_session(*, redis: Redis, settings: Settings, user: UserRecord) -> tuple[str, Session]:
    """Start a session for ``user``; returns the id for the cookie and the stored session."""
    session_id = random_token()
    key = session_key(session_id)
    session = Session(
        key=key, user_id=user.id, created_at=time.time(), csrf_token=random_token(), stamp=user_stamp(user)
    )
    user_set = USER_SESSIONS_KEY + user.id
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(
            key,
            mapping={
                "user_id": session.user_id,
                "created_at": repr(session.created_at),
                "csrf": session.csrf_token,
                "stamp": session.stamp,
            },
        )
        pipe.expire(key, min(_idle_seconds(settings), _max_seconds(settings)))
        pipe.sadd(user_set, key)
        pipe.expire(user_set, _max_seconds(settings))
        await pipe.execute()
    return session_id, session


async def load_session(*, redis: Redis, settings: Settings, session_id: str) -> Session | None:
    """The live session for ``session_id`` with its idle TTL refreshed; None when absent or expired."""
    if not session_id or len(session_id) > 128:
        return None
    key = session_key(session_id)
    raw = await redis.hgetall(key)
    if not raw:
        return None
    data = {
        k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v for k, v in raw.items()
    }
    try:
        session = Session(
            key=key,
            user_id=data["user_id"],
            created_at=float(data["created_at"]),
            csrf_token=data["csrf"],
            stamp=data.get("stamp", ""),
        )
    except (KeyError, ValueError):
        await redis.delete(key)
        return None
    remaining = session.created_at + _max_seconds(settings) - time.time()
    if remaining <= 0:
        await delete_session_key(redis=redis, key=key, user_id=session.user_id)
        return None
    await redis.expire(key, max(1, int(min(_idle_seconds(settings), remaining))))
    return session


async def delete_session_key(*, redis: Redis, key: str, user_id: str | None = None) -> None:
    """Delete one session by its Redis key."""
    async with redis.pipeline(transaction=True) as pipe:
        pipe.delete(key)
        if user_id:
            pipe.srem(USER_SESSIONS_KEY + user_id, key)
        await pipe.execute()


async def revoke_session(*, redis: Redis, session_id: str) -> None:
    """End the session with this id (logout)."""
    key = session_key(session_id)
    user_id = await redis.hget(key, "user_id")
    await delete_session_key(redis=redis, key=key, user_id=user_id.decode() if isinstance(user_id, bytes) else user_id)


async def revoke_user_sessions(*, redis: Redis, user_id: str) -> int:
    """End every session of a user; returns how many were live."""
    user_set = USER_SESSIONS_KEY + user_id
    keys = await redis.smembers(user_set)
    async with redis.pipeline(transaction=True) as pipe:
        for key in keys:
            pipe.delete(key)
        pipe.delete(user_set)
        results = await pipe.execute()
    return sum(int(r) for r in results[:-1])
