"""Redis cache of search and stats answers, invalidated by a write generation.

Keys are ``logwarden:cache:<kind>:<sha256>`` where the hash covers the
normalised request, the caller's tenant restriction and the current value of
``logwarden:cache:generation``. The indexer (and every delete) increments the
generation after each durable write, so a cached answer can never hide events
indexed after it was filled, and old entries simply expire: nothing ever
enumerates keys (no KEYS/SCAN) to invalidate.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from shared.metrics import CACHE_REQUESTS

GENERATION_KEY: Final = "logwarden:cache:generation"
KEY_PREFIX: Final = "logwarden:cache:"

log = logging.getLogger(__name__)


async def bump_generation(redis: Redis) -> int:
    """Invalidate every cached answer (called after each durable write or delete)."""
    return int(await redis.incr(GENERATION_KEY))


class QueryCache:
    """Read-through cache of JSON-able answers per kind (``search``, ``stats``)."""

    def __init__(self, redis: Redis, *, ttl_seconds: dict[str, int]) -> None:
        self._redis = redis
        self._ttl = dict(ttl_seconds)

    async def generation(self) -> int:
        """Current write generation (0 before the first write)."""
        value = await self._redis.get(GENERATION_KEY)
        return int(value) if value is not None else 0

    def key(self, kind: str, generation: int, request: dict[str, Any]) -> str:
        """Cache key of a normalised request at a generation."""
        material = orjson.dumps({"g": generation, "r": request}, option=orjson.OPT_SORT_KEYS)
        return f"{KEY_PREFIX}{kind}:{hashlib.sha256(material).hexdigest()}"

    async def get_or_compute(
        self, kind: str, request: dict[str, Any], compute: Callable[[], Awaitable[dict[str, Any]]]
    ) -> tuple[dict[str, Any], bool]:
        """The cached answer for ``request`` or a freshly computed one; returns (answer, hit).

        A Redis failure never fails the query: the answer is computed and the
        lookup counted as an error.
        """
        ttl = self._ttl.get(kind, 0)
        if ttl <= 0:
            CACHE_REQUESTS.labels(kind, "bypass").inc()
            return await compute(), False
        try:
            key = self.key(kind, await self.generation(), request)
            raw = await self._redis.get(key)
        except RedisError:
            log.warning("query cache unavailable; computing %s without it", kind)
            CACHE_REQUESTS.labels(kind, "error").inc()
            return await compute(), False
        if raw is not None:
            CACHE_REQUESTS.labels(kind, "hit").inc()
            return orjson.loads(raw), True
        CACHE_REQUESTS.labels(kind, "miss").inc()
        answer = await compute()
        try:
            await self._redis.set(key, orjson.dumps(answer), ex=ttl)
        except RedisError:
            log.warning("could not store a %s answer in the query cache", kind)
        return answer, False
