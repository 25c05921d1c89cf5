"""Every Prometheus metric logwarden exports, declared once.

Metrics live in prometheus_client's process-wide registry (the idiomatic place:
one process runs one service). Dashboards and alert rules under
``deploy/observability/`` may only use names declared here; a test checks it.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
FAST_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# --- HTTP, every service (names kept from the first version) -------------------
HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests by route template.", ["method", "endpoint", "status_code"]
)
HTTP_LATENCY = Histogram(
    "http_request_latency_seconds",
    "HTTP request latency by route template.",
    ["method", "endpoint"],
    buckets=LATENCY_BUCKETS,
)

# --- gateway -------------------------------------------------------------------------
PROXY_UPSTREAM_ERRORS = Counter(
    "logwarden_proxy_upstream_errors_total", "Proxied requests that failed upstream.", ["service", "kind"]
)
AUTH_FAILURES = Counter("logwarden_auth_failures_total", "Refused authentications.", ["reason"])

# --- ingest ------------------------------------------------------------------------------
INGESTED_EVENTS = Counter("logwarden_ingested_events_total", "Events accepted.", ["input", "format"])
REJECTED_EVENTS = Counter("logwarden_rejected_events_total", "Records refused.", ["input", "reason"])
INGESTED_BYTES = Counter("logwarden_ingested_bytes_total", "Bytes received.", ["input"])
PUBLISH_LATENCY = Histogram("logwarden_publish_latency_seconds", "Time to XADD one batch.", buckets=FAST_BUCKETS)
UPLOAD_FILES = Counter("logwarden_upload_files_total", "Uploaded files by final status.", ["status"])
BACKPRESSURE = Counter("logwarden_backpressure_total", "Requests refused or paused for backlog.", ["input"])

# --- query / indexer ----------------------------------------------------------------------
INDEXED_EVENTS = Counter("logwarden_indexed_events_total", "Events written to the log store.")
INDEX_BATCH_LATENCY = Histogram(
    "logwarden_index_batch_latency_seconds", "Time to durably write one batch.", buckets=FAST_BUCKETS
)
CONSUMER_LAG = Gauge("logwarden_consumer_lag", "Stream entries not yet acknowledged by the indexer.")
OLDEST_PENDING_AGE = Gauge(
    "logwarden_oldest_pending_age_seconds", "Age of the oldest delivered-but-unacknowledged entry."
)
DEAD_LETTERED = Counter("logwarden_dead_lettered_total", "Stream entries moved to the dead-letter stream.")
QUERY_LATENCY = Histogram(
    "logwarden_query_latency_seconds", "Store time per query kind.", ["kind"], buckets=FAST_BUCKETS
)
CACHE_REQUESTS = Counter("logwarden_cache_requests_total", "Query cache lookups.", ["kind", "result"])

# --- realtime ------------------------------------------------------------------------------
LIVE_CLIENTS = Gauge("logwarden_live_clients", "Connected live-tail clients.")
LIVE_EVENTS_PUSHED = Counter("logwarden_live_events_pushed_total", "Events emitted to live clients.")
LIVE_EVENTS_DROPPED = Counter("logwarden_live_events_dropped_total", "Events dropped for slow clients.")
LIVE_PUSH_LATENCY = Histogram(
    "logwarden_live_push_latency_seconds", "Ingest publish to Socket.IO emit.", buckets=FAST_BUCKETS
)
