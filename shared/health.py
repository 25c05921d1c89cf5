"""Readiness checks shared by every service: each dependency reports status and timing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["healthy", "degraded", "unhealthy"]
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


@dataclass(slots=True)
class CheckResult:
    """Outcome of one dependency check."""

    status: Status
    response_time_ms: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON shape used by ``/health`` and ``/api/health``."""
        return {"status": self.status, "response_time_ms": round(self.response_time_ms, 2), "details": self.details}


Check = Callable[[], Awaitable[CheckResult]]


def worst(statuses: list[str]) -> Status:
    """The worst of several statuses (healthy if there are none)."""
    rank = max((_RANK.get(s, 2) for s in statuses), default=0)
    statuses_by_rank: tuple[Status, ...] = ("healthy", "degraded", "unhealthy")
    return statuses_by_rank[rank]


async def run_check(check: Check, *, timeout: float = 2.0) -> CheckResult:
    """Run one check with a deadline, timing it and turning failures into ``unhealthy``."""
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check(), timeout)
    except TimeoutError:
        result = CheckResult("unhealthy", details={"error": f"timed out after {timeout:g}s"})
    except Exception as exc:  # a health check must report, never raise
        result = CheckResult("unhealthy", details={"error": type(exc).__name__})
    result.response_time_ms = (time.perf_counter() - started) * 1000
    return result


async def run_checks(checks: Mapping[str, Check], *, timeout: float = 2.0) -> dict[str, Any]:
    """Run all checks concurrently; returns ``{status, checks: {name: {...}}}``."""
    names = list(checks)
    results = await asyncio.gather(*(run_check(checks[n], timeout=timeout) for n in names))
    by_name = {n: r.to_dict() for n, r in zip(names, results, strict=True)}
    return {"status": worst([r.status for r in results]), "checks": by_name}


async def check_redis(redis: Any) -> CheckResult:
    """PING the Redis client."""
    await redis.ping()
    return CheckResult("healthy")
