"""A deterministic, varied set of events and the in-memory truth the tests compare against."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from shared.models import LogEvent

BASE = datetime(2030, 3, 10, 12, 0, tzinfo=UTC)  # fixed, spans 3 UTC days below
LEVELS = ("DEBUG", "INFO", "INFO", "INFO", "WARNING", "ERROR", "CRITICAL")
SERVICES = ("billing", "auth", "orders")
SERVERS = ("server-01", "server-02", "server-03")
ENDPOINTS = ("/api/users", "/api/users/42", "/api/orders", "/api/billing", "/health")
TENANTS = ("acme", "globex")
STATUSES = (200, 200, 201, 301, 400, 404, 500, 503)
WORDS = ("timeout", "connection", "refused", "payment", "declined", "cache", "miss", "user", "login", "failed")


def make_events(count: int = 300, *, seed: int = 7, base: datetime = BASE) -> list[LogEvent]:
    """``count`` events over ~60 hours before ``base`` with every field varied."""
    rng = random.Random(seed)
    events = []
    for i in range(count):
        level = rng.choice(LEVELS)
        status = rng.choice(STATUSES)
        words = rng.sample(WORDS, 3)
        has_http = i % 10 != 0  # every tenth event is a plain log line
        attrs = {"region": rng.choice(("eu", "us"))}
        if i % 4 == 0:
            attrs["db.table"] = rng.choice(("users", "orders"))
        events.append(
            LogEvent(
                timestamp=base - timedelta(minutes=rng.randrange(0, 60 * 60), milliseconds=rng.randrange(1000)),
                level=level,  # type: ignore[arg-type]
                service=rng.choice(SERVICES),
                server=rng.choice(SERVERS),
                endpoint=rng.choice(ENDPOINTS) if has_http else None,
                method=rng.choice(("GET", "POST")) if has_http else None,
                status_code=status if has_http else None,
                response_time_ms=round(rng.uniform(1, 3000), 3) if has_http else None,
                user_id=f"user-{rng.randrange(40)}",
                tenant_id=rng.choice(TENANTS),
                client_ip=f"10.0.0.{rng.randrange(1, 255)}",
                message=f"{words[0]} {words[1]} {words[2]} request {i}",
                source="http",
                attrs=attrs,
            )
        )
    return events
