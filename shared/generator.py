"""Synthetic traffic for demos, tests and benchmarks (``logwarden generate``).

Modelled on the first version's generator (FIRST-VERSION.md) with its faults fixed:
the level follows the status code, timestamps are true UTC, output is reproducible
with a seed (ids included) and sorted by time.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import io
import math
import random
import sys
from array import array
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Final, Literal

import orjson
from ulid import ULID

from shared.models import LogEvent, epoch_ms, format_timestamp, from_epoch_ms, utc_now

# endpoint -> (service, median response time in ms)
ENDPOINTS: Final[dict[str, tuple[str, float]]] = {
    "/api/auth/login": ("auth", 120.0),
    "/api/users": ("users", 60.0),
    "/api/orders": ("orders", 150.0),
    "/api/products": ("catalog", 80.0),
    "/api/analytics/dashboard": ("analytics", 400.0),
    "/api/settings": ("settings", 40.0),
    "/api/integrations": ("integrations", 200.0),
    "/api/webhooks": ("webhooks", 90.0),
    "/api/reports": ("reports", 600.0),
    "/api/billing": ("billing", 180.0),
}
SERVERS: Final[tuple[str, ...]] = tuple(f"server-{i:02d}" for i in range(1, 6))
METHODS: Final[dict[str, int]] = {"GET": 60, "POST": 25, "PUT": 10, "DELETE": 5}
STATUSES: Final[dict[int, int]] = {200: 70, 201: 5, 400: 10, 401: 5, 404: 5, 500: 3, 503: 2}
TENANTS: Final[int] = 50
USERS: Final[int] = 500
BUSINESS_HOURS: Final[tuple[int, int]] = (9, 17)  # UTC, [start, end)
BUSINESS_SHARE: Final[float] = 0.75
SLOW_SHARE: Final[float] = 0.05
SQL_SHARE: Final[float] = 0.30
BURST_SHARE: Final[float] = 0.4  # of the 5xx events, the part that arrives in bursts
BURST_SIZE: Final[tuple[int, int]] = (5, 15)
DEBUG_SHARE: Final[float] = 0.05  # of 2xx events
CSV_COLUMNS: Final[tuple[str, ...]] = (
    "timestamp",
    "log_type",
    "level",
    "client_ip",
    "user_id",
    "method",
    "endpoint",
    "status_code",
    "response_time_ms",
    "user_agent",
    "message",
    "sql_query",
    "query_duration_ms",
    "server",
    "tenant_id",
    "service",
)
_ATTR_COLUMNS: Final[tuple[str, ...]] = ("log_type", "user_agent", "sql_query", "query_duration_ms")
USER_AGENTS: Final[tuple[str, ...]] = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "python-requests/2.31.0",
    "okhttp/4.12.0",
    "curl/8.5.0",
)
_TABLES: Final[dict[str, str]] = {
    "auth": "sessions",
    "users": "users",
    "orders": "orders",
    "catalog": "products",
    "analytics": "events",
    "settings": "tenant_settings",
    "integrations": "integrations",
    "webhooks": "webhook_deliveries",
    "reports": "report_runs",
    "billing": "invoices",
}
_SUCCESS: Final[dict[str, str]] = {
    "auth": "User {user} logged in",
    "users": "{verb} user profile for {user}",
    "orders": "{verb} order ORD-{n:06d} for {tenant}",
    "catalog": "{verb} product SKU-{n:05d}",
    "analytics": "Dashboard rendered for {tenant} ({widgets} widgets)",
    "settings": "{verb} settings for {tenant}",
    "integrations": "{verb} integration int_{n:04d} for {tenant}",
    "webhooks": "Webhook wh_{n:05d} {verb_past}",
    "reports": "Report rpt_{n:05d} {verb_past} for {tenant}",
    "billing": "{verb} invoice INV-{n:06d} for {tenant}",
}
_CLIENT_ERRORS: Final[dict[int, str]] = {
    400: "Validation failed on {endpoint}: missing field '{field}'",
    401: "Authentication failed for {user}: invalid or expired token",
    404: "{endpoint}/{n} not found",
}
_SERVER_ERRORS: Final[dict[int, tuple[str, ...]]] = {
    500: (
        "Unhandled exception in {service}: database connection timeout after 30000 ms",
        "Unhandled exception in {service}: deadlock detected while updating {table}",
        "Internal error in {service}: NullPointerException in handler",
    ),
    503: (
        "{service} unavailable: upstream connection pool exhausted",
        "{service} unavailable: circuit breaker open for {table} database",
    ),
}
_VERBS: Final[dict[str, tuple[str, str]]] = {
    "GET": ("Fetched", "fetched"),
    "POST": ("Created", "created"),
    "PUT": ("Updated", "updated"),
    "DELETE": ("Deleted", "deleted"),
}
_FIELDS: Final[tuple[str, ...]] = ("email", "quantity", "currency", "name", "callback_url")


def _weighted(rng: random.Random, table: dict[Any, int]) -> Any:
    return rng.choices(list(table), weights=list(table.values()))[0]


def _segments(start_ms: int, end_ms: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Split [start, end) into business-hours and other segments (UTC)."""
    business: list[tuple[int, int]] = []
    other: list[tuple[int, int]] = []
    day = datetime.fromtimestamp(start_ms / 1000, tz=UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    cursor = start_ms
    while cursor < end_ms:
        open_ms = epoch_ms(day + timedelta(hours=BUSINESS_HOURS[0]))
        close_ms = epoch_ms(day + timedelta(hours=BUSINESS_HOURS[1]))
        next_day = epoch_ms(day + timedelta(days=1))
        for lo, hi, bucket in ((cursor, open_ms, other), (open_ms, close_ms, business), (close_ms, next_day, other)):
            lo, hi = max(lo, cursor), min(hi, end_ms)
            if hi > lo:
                bucket.append((lo, hi))
        cursor = next_day
        day += timedelta(days=1)
    return business, other


def _sample_times(rng: random.Random, count: int, start_ms: int, end_ms: int) -> array[int]:
    business, other = _segments(start_ms, end_ms)

    def sampler(segments: list[tuple[int, int]]) -> tuple[list[int], int]:
        bounds, total = [], 0
        for lo, hi in segments:
            total += hi - lo
            bounds.append(total)
        return bounds, total

    b_bounds, b_total = sampler(business)
    o_bounds, o_total = sampler(other)
    times = array("q")
    for _ in range(count):
        use_business = o_total == 0 or (b_total > 0 and rng.random() < BUSINESS_SHARE)
        segments, bounds, total = (business, b_bounds, b_total) if use_business else (other, o_bounds, o_total)
        offset = rng.randrange(total)
        i = bisect.bisect_right(bounds, offset)
        lo, _hi = segments[i]
        times.append(lo + offset - (bounds[i - 1] if i else 0))
    return array("q", sorted(times))


def _statuses(rng: random.Random, count: int) -> tuple[array[int], set[int]]:
    """Status per event; part of the 5xx budget is regrouped into bursts of consecutive events."""
    codes, weights = list(STATUSES), list(STATUSES.values())
    statuses = array("H", rng.choices(codes, weights=weights, k=count))
    server_errors = [i for i, s in enumerate(statuses) if s >= 500]
    budget = int(len(server_errors) * BURST_SHARE)
    burst: set[int] = set()
    rng.shuffle(server_errors)
    while budget >= BURST_SIZE[0] and count > BURST_SIZE[1]:
        size = min(rng.randint(*BURST_SIZE), budget)
        start = rng.randrange(0, count - size)
        members = [i for i in range(start, start + size) if i not in burst]
        code = 500 if rng.random() < 0.6 else 503
        for i in members:
            if statuses[i] < 500:
                # Keep the overall 5xx share: a scattered 5xx elsewhere becomes a 200.
                while server_errors:
                    j = server_errors.pop()
                    if j not in burst and not (start <= j < start + size):
                        statuses[j] = 200
                        break
            statuses[i] = code
            burst.add(i)
        budget -= len(members) or size
    return statuses, burst


def _event_id(rng: random.Random, ts_ms: int) -> str:
    return str(ULID.from_bytes(ts_ms.to_bytes(6, "big") + rng.getrandbits(80).to_bytes(10, "big")))


def generate_events(
    *, count: int, days: float = 1.0, seed: int | None = None, end: datetime | None = None
) -> Iterator[LogEvent]:
    """Yield exactly ``count`` realistic API events in [end - days, end), sorted by time.

    The same seed and end give identical events, ids included.
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    if days <= 0:
        raise ValueError("days must be > 0")
    rng = random.Random(seed)
    end = utc_now() if end is None else (end if end.tzinfo else end.replace(tzinfo=UTC))
    end_ms = epoch_ms(end)
    start_ms = end_ms - max(1, round(days * 86_400_000))
    times = _sample_times(rng, count, start_ms, end_ms)
    statuses, burst = _statuses(rng, count)
    endpoints = list(ENDPOINTS)
    user_ips = [
        f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        for _ in range(USERS)
    ]
    user_agents = [rng.choice(USER_AGENTS) for _ in range(USERS)]
    burst_target: tuple[str, str] | None = None
    previous_in_burst = False
    for i in range(count):
        ts_ms = times[i]
        status = statuses[i]
        in_burst = i in burst
        if in_burst and not previous_in_burst:
            burst_target = (rng.choice(endpoints), rng.choice(SERVERS))  # one endpoint on one server fails
        previous_in_burst = in_burst
        if in_burst and burst_target is not None:
            endpoint, server = burst_target
        else:
            endpoint, server = rng.choice(endpoints), rng.choice(SERVERS)
        service, median = ENDPOINTS[endpoint]
        method = _weighted(rng, METHODS)
        user_n = rng.randint(1, USERS)
        user = f"user_{user_n}"
        tenant = f"tenant_{(user_n - 1) % TENANTS + 1}"
        response = median * math.exp(rng.gauss(0.0, 0.5))
        if rng.random() < SLOW_SHARE:
            response += rng.uniform(1000.0, 3000.0)
        attrs = {"log_type": "api", "user_agent": user_agents[user_n - 1]}
        if rng.random() < SQL_SHARE:
            table = _TABLES[service]
            query_ms = round(min(response * rng.uniform(0.1, 0.8), response), 2)
            attrs["sql_query"] = _sql(rng, method, table)
            attrs["query_duration_ms"] = f"{query_ms:.2f}"
        level, message = _level_and_message(rng, status, method, endpoint, service, user, tenant)
        yield LogEvent(
            id=_event_id(rng, ts_ms),
            timestamp=from_epoch_ms(ts_ms),
            level=level,
            service=service,
            server=server,
            endpoint=endpoint,
            method=method,
            status_code=status,
            response_time_ms=round(response, 2),
            user_id=user,
            tenant_id=tenant,
            client_ip=user_ips[user_n - 1],
            message=message,
            source="generator",
            attrs=attrs,
        )


def _sql(rng: random.Random, method: str, table: str) -> str:
    n = rng.randint(1, 99999)
    if method == "GET":
        return f"SELECT * FROM {table} WHERE tenant_id = $1 ORDER BY created_at DESC LIMIT {rng.choice((20, 50, 100))}"
    if method == "POST":
        return f"INSERT INTO {table} (tenant_id, payload, created_at) VALUES ($1, $2, now())"
    if method == "PUT":
        return f"UPDATE {table} SET payload = $2, updated_at = now() WHERE id = {n}"
    return f"DELETE FROM {table} WHERE id = {n}"


def _level_and_message(
    rng: random.Random, status: int, method: str, endpoint: str, service: str, user: str, tenant: str
) -> tuple[str, str]:
    n = rng.randint(1, 99999)
    if status >= 500:
        template = rng.choice(_SERVER_ERRORS[status])
        level = "CRITICAL" if status == 503 else "ERROR"
        return level, template.format(service=service, table=_TABLES[service])
    if status >= 400:
        template = _CLIENT_ERRORS[status]
        return "WARNING", template.format(endpoint=endpoint, user=user, n=n, field=rng.choice(_FIELDS))
    verb, verb_past = _VERBS[method]
    message = _SUCCESS[service].format(
        user=user, tenant=tenant, n=n, widgets=n % 24 + 1, verb=verb, verb_past=verb_past
    )
    return ("DEBUG" if rng.random() < DEBUG_SHARE else "INFO"), message


def _wire(event: LogEvent) -> dict[str, Any]:
    # Files are ingest input: id and source are assigned by ingest, so they are not written.
    data = event.to_dict()
    data.pop("id", None)
    data.pop("source", None)
    return data


def write_events(events: Iterable[LogEvent], fp: BinaryIO, fmt: Literal["csv", "ndjson", "json"]) -> int:
    """Write events as CSV (first-version columns plus service), NDJSON or a JSON array; returns the count."""
    written = 0
    if fmt == "ndjson":
        for event in events:
            fp.write(orjson.dumps(_wire(event)) + b"\n")
            written += 1
    elif fmt == "json":
        fp.write(b"[")
        for event in events:
            fp.write((b",\n" if written else b"\n") + orjson.dumps(_wire(event)))
            written += 1
        fp.write(b"\n]\n")
    elif fmt == "csv":
        text = io.TextIOWrapper(fp, encoding="utf-8", newline="", write_through=True)
        try:
            writer = csv.writer(text, lineterminator="\n")
            writer.writerow(CSV_COLUMNS)
            for event in events:
                writer.writerow(_csv_row(event))
                written += 1
            text.flush()
        finally:
            text.detach()  # leave the caller's stream open
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return written


def _csv_row(event: LogEvent) -> list[str]:
    row: list[str] = []
    for column in CSV_COLUMNS:
        if column == "timestamp":
            row.append(format_timestamp(event.timestamp))
        elif column in _ATTR_COLUMNS:
            row.append(event.attrs.get(column, ""))
        else:
            value = getattr(event, column)
            row.append("" if value is None else (repr(value) if isinstance(value, float) else str(value)))
    return row


def add_generate_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``logwarden generate`` to ``parser``."""
    parser.add_argument("--count", type=int, default=1000, help="number of events (default 1000)")
    parser.add_argument("--days", type=float, default=1.0, help="spread over the last D days (default 1)")
    parser.add_argument("--format", choices=("csv", "ndjson", "json"), default="ndjson", dest="format")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible output")
    parser.add_argument("--output", default=None, help="file to write (default stdout)")
    parser.add_argument("--send", default=None, metavar="URL", help="POST NDJSON batches to URL (/api/logs)")
    parser.add_argument("--api-key", default=None, help="API key for --send (Authorization: Bearer)")


def _send(events: Iterable[LogEvent], url: str, api_key: str | None, batch_size: int = 1000) -> int:
    import httpx  # only the --send path needs it

    headers = {"Content-Type": "application/x-ndjson"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    sent = 0
    batch: list[bytes] = []
    with httpx.Client(timeout=30.0) as client:

        def flush() -> None:
            nonlocal sent
            response = client.post(url, content=b"\n".join(batch) + b"\n", headers=headers)
            if response.status_code >= 300:
                raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")
            sent += len(batch)
            batch.clear()

        for event in events:
            batch.append(orjson.dumps(_wire(event)))
            if len(batch) >= batch_size:
                flush()
        if batch:
            flush()
    return sent


def run_generate(args: argparse.Namespace) -> int:
    """Run ``logwarden generate``; returns the process exit code."""
    if args.count < 0 or args.days <= 0:
        print("error: --count must be >= 0 and --days > 0", file=sys.stderr)
        return 2
    events = generate_events(count=args.count, days=args.days, seed=args.seed)
    if args.send:
        import httpx

        try:
            sent = _send(events, args.send, args.api_key)
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"error: sending failed: {exc}", file=sys.stderr)
            return 1
        print(f"sent {sent} events to {args.send}", file=sys.stderr)
        return 0
    if args.output:
        with open(args.output, "wb") as fp:
            write_events(events, fp, args.format)
    else:
        write_events(events, sys.stdout.buffer, args.format)
        sys.stdout.buffer.flush()
    return 0
