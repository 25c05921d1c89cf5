"""KPI definitions shared by every LogStore backend (DESIGN.md §5 ``/api/stats``).

Both backends run the *same* Elasticsearch-style aggregation requests built here
(tantivy speaks that dialect too) and feed the raw responses to
:class:`KpiAccumulator`, which merges partial results (one per tantivy day index;
one for the whole Elasticsearch index pattern) and builds the KPI document.

Exactness, by design:

* counts, error counts, averages, levels, status codes and per-service rates are
  sums of per-partial counts and sums, so they are exact after merging;
* percentiles come from a histogram over :func:`rt_bucket`, a log-scale bucket
  index of ``response_time_ms`` written at index time. Bucket counts merge
  exactly across days and each bucket spans 1 %, so a percentile read from the
  merged histogram is within 0.5 % of the exact (linearly interpolated) value.
  Native ``percentiles`` aggregations would give sketches that cannot be merged
  across tantivy's day indices, and would differ between backends;
* ``active_users`` (distinct ``user_id``) is computed by each backend: tantivy
  unions the exact term sets of every day; Elasticsearch uses ``cardinality``
  (exact below its 40 000 precision threshold, HyperLogLog++ above).

This module also holds the few value semantics both backends must agree on
(status classes, derived index fields), so that the two translations of a query
cannot drift apart.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from shared.models import ERROR_LEVELS, LogEvent, format_timestamp, from_epoch_ms

# --- derived index fields -------------------------------------------------------

#: Internal fields every backend indexes next to the event fields (never returned).
IS_ERROR_FIELD: Final[str] = "is_error"
RT_BUCKET_FIELD: Final[str] = "rt_bucket"
ERROR_MESSAGE_FIELD: Final[str] = "error_message"
INTERNAL_FIELDS: Final[tuple[str, ...]] = (IS_ERROR_FIELD, RT_BUCKET_FIELD, ERROR_MESSAGE_FIELD)

#: ``top_errors`` groups by the exact message, cut to this many characters (term length limits).
ERROR_MESSAGE_MAX_CHARS: Final[int] = 1024

#: Response times below this (ms) fall in bucket 0, which stands for 0.
RT_MIN_MS: Final[float] = 0.001
#: Ratio between bucket bounds: each bucket spans 1 %.
RT_RATIO: Final[float] = 1.01
_LOG_RATIO: Final[float] = math.log(RT_RATIO)


def rt_bucket(value: float) -> int:
    """Log-scale bucket of a response time: 0 below ``RT_MIN_MS``, else bucket k covers
    ``[RT_MIN_MS * 1.01**(k-1), RT_MIN_MS * 1.01**k)``."""
    if value < RT_MIN_MS:
        return 0
    return 1 + math.floor(math.log(value / RT_MIN_MS) / _LOG_RATIO)


def rt_bucket_value(bucket: int) -> float:
    """Representative value of a bucket (geometric centre: within 0.5 % of any value in it)."""
    if bucket <= 0:
        return 0.0
    return RT_MIN_MS * RT_RATIO ** (bucket - 0.5)


def derived_fields(event: LogEvent) -> dict[str, Any]:
    """The internal fields indexed for ``event`` (``is_error``, ``rt_bucket``, ``error_message``)."""
    out: dict[str, Any] = {IS_ERROR_FIELD: 1 if event.level in ERROR_LEVELS else 0}
    if event.response_time_ms is not None:
        out[RT_BUCKET_FIELD] = rt_bucket(event.response_time_ms)
    if event.level in ERROR_LEVELS:
        out[ERROR_MESSAGE_FIELD] = event.message[:ERROR_MESSAGE_MAX_CHARS]
    return out


# --- status classes -----------------------------------------------------------------

_STATUS_CLASS_RE: Final = re.compile(r"([1-9])[xX][xX]")


def status_code_bounds(value: str) -> tuple[int, int]:
    """Inclusive bounds of a status filter: ``"404"`` -> (404, 404), ``"5xx"`` -> (500, 599).

    Raises ValueError for anything else.
    """
    text = value.strip()
    match = _STATUS_CLASS_RE.fullmatch(text)
    if match:
        low = int(match.group(1)) * 100
        return low, low + 99
    if text.isascii() and text.isdigit():
        code = int(text)
        return code, code
    raise ValueError(f"invalid status code filter {value!r}: expected a code like 404 or a class like 5xx")


# --- aggregation requests -----------------------------------------------------------

#: Time histograms are widened so that one request never yields more buckets than this.
MAX_TIME_BUCKETS: Final[int] = 2000
#: Terms sizes: large enough that per-partial term lists are complete in practice,
#: which is what makes the cross-day merge exact.
ENDPOINTS_SIZE: Final[int] = 5000
SERVICES_SIZE: Final[int] = 1000
ERROR_MESSAGES_SIZE: Final[int] = 5000
STATUS_CODES_SIZE: Final[int] = 1000
LEVELS_SIZE: Final[int] = 16
#: Width, in ``rt_bucket`` steps, of the per-time-bucket response-time histograms.
TIMELINE_RT_BUCKET_WIDTH: Final[int] = 5

Backend = Literal["tantivy", "elasticsearch"]


def effective_interval(interval_ms: int, span_ms: int | None) -> int:
    """``interval_ms`` widened (to a whole multiple of itself) so ``span_ms`` fits ``MAX_TIME_BUCKETS``."""
    interval = max(1, int(interval_ms))
    if span_ms is not None and span_ms > 0:
        needed = math.ceil(span_ms / MAX_TIME_BUCKETS)
        if needed > interval:
            interval *= math.ceil(needed / interval)
    return interval


def time_histogram(interval_ms: int, backend: Backend) -> dict[str, Any]:
    """Epoch-aligned buckets of ``timestamp`` (tantivy stores it as epoch ms, so a numeric histogram)."""
    if backend == "elasticsearch":
        return {"date_histogram": {"field": "timestamp", "fixed_interval": f"{interval_ms}ms", "min_doc_count": 1}}
    return {"histogram": {"field": "timestamp", "interval": interval_ms, "min_doc_count": 1}}


def kpi_aggregations(interval_ms: int, backend: Backend) -> dict[str, Any]:
    """The one aggregation request behind ``/api/stats`` (both backends)."""
    errors = {"sum": {"field": IS_ERROR_FIELD}}
    return {
        "levels": {"terms": {"field": "level", "size": LEVELS_SIZE}},
        "status_codes": {"terms": {"field": "status_code", "size": STATUS_CODES_SIZE}},
        "errors": errors,
        "rt": {"stats": {"field": "response_time_ms"}},
        "rt_hist": {"histogram": {"field": RT_BUCKET_FIELD, "interval": 1, "min_doc_count": 1}},
        "endpoints": {
            "terms": {"field": "endpoint", "size": ENDPOINTS_SIZE},
            "aggs": {"rt": {"stats": {"field": "response_time_ms"}}},
        },
        "services": {"terms": {"field": "service", "size": SERVICES_SIZE}, "aggs": {"errors": errors}},
        "top_errors": {"terms": {"field": ERROR_MESSAGE_FIELD, "size": ERROR_MESSAGES_SIZE}},
        "over_time": {
            **time_histogram(interval_ms, backend),
            "aggs": {
                "errors": errors,
                "levels": {"terms": {"field": "level", "size": LEVELS_SIZE}},
                "rt": {"stats": {"field": "response_time_ms"}},
                # Per-bucket percentiles only feed a chart: 5 %-wide buckets keep the
                # request small (one sub-histogram per time bucket) at ~2.5 % error.
                "rt_hist": {
                    "histogram": {"field": RT_BUCKET_FIELD, "interval": TIMELINE_RT_BUCKET_WIDTH, "min_doc_count": 1}
                },
            },
        },
    }


def endpoint_percentile_aggregations(endpoints: list[str]) -> dict[str, Any]:
    """Second pass: response-time histograms of the slowest endpoints (for their p95)."""
    return {
        "endpoints": {
            "terms": {"field": "endpoint", "size": max(1, len(endpoints))},
            "aggs": {"rt_hist": {"histogram": {"field": RT_BUCKET_FIELD, "interval": 1, "min_doc_count": 1}}},
        }
    }


# --- merging ----------------------------------------------------------------------------


def _num(value: Any) -> float:
    return float(value) if value is not None else 0.0


def _buckets(result: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    agg = result.get(name) or {}
    return list(agg.get("buckets") or [])


def _key_str(key: Any) -> str:
    if isinstance(key, float) and key.is_integer():
        return str(int(key))
    return str(key)


def _sum_value(agg: Mapping[str, Any] | None) -> float:
    if not agg:
        return 0.0
    return _num(agg.get("value"))


def percentile_from_histogram(
    hist: Mapping[int, int], percent: float, *, low: float | None = None, high: float | None = None
) -> float | None:
    """Linearly interpolated percentile (numpy's default definition) read from bucket counts.

    ``low``/``high`` (the exact min and max) clamp the answer. None when empty.
    """
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = percent / 100.0 * (total - 1)
    lower_rank, upper_rank = math.floor(rank), math.ceil(rank)
    values: dict[int, float] = {}
    seen = 0
    for bucket in sorted(hist):
        count = hist[bucket]
        first, last = seen, seen + count - 1
        for wanted in (lower_rank, upper_rank):
            if wanted not in values and first <= wanted <= last:
                values[wanted] = rt_bucket_value(bucket)
        seen += count
        if upper_rank in values:
            break
    lo_v, hi_v = values[lower_rank], values[upper_rank]
    value = lo_v + (rank - lower_rank) * (hi_v - lo_v)
    if low is not None:
        value = max(value, low)
    if high is not None:
        value = min(value, high)
    return value


@dataclass
class _Stats:
    count: int = 0
    total: float = 0.0
    low: float | None = None
    high: float | None = None

    def add(self, agg: Mapping[str, Any] | None) -> None:
        if not agg or not agg.get("count"):
            return
        self.count += int(agg["count"])
        self.total += _num(agg.get("sum"))
        for name in ("min", "max"):
            value = agg.get(name)
            if value is None:
                continue
            if name == "min":
                self.low = float(value) if self.low is None else min(self.low, float(value))
            else:
                self.high = float(value) if self.high is None else max(self.high, float(value))

    @property
    def avg(self) -> float | None:
        return self.total / self.count if self.count else None


@dataclass
class _TimeSlot:
    count: int = 0
    errors: float = 0.0
    levels: Counter[str] = field(default_factory=Counter)
    rt: _Stats = field(default_factory=_Stats)
    rt_hist: Counter[int] = field(default_factory=Counter)

    def add(self, bucket: Mapping[str, Any]) -> None:
        self.count += int(bucket["doc_count"])
        self.errors += _sum_value(bucket.get("errors"))
        for b in _buckets(bucket, "levels"):
            self.levels[str(b["key"])] += int(b["doc_count"])
        self.rt.add(bucket.get("rt"))
        for b in _buckets(bucket, "rt_hist"):
            # Key k counts rt buckets k..k+4; k+2 is their middle.
            self.rt_hist[round(float(b["key"])) + TIMELINE_RT_BUCKET_WIDTH // 2] += int(b["doc_count"])

    def to_dict(self, timestamp: int) -> dict[str, Any]:
        def pct(p: float) -> float | None:
            return percentile_from_histogram(self.rt_hist, p, low=self.rt.low, high=self.rt.high)

        return {
            "timestamp": format_timestamp(from_epoch_ms(timestamp)),
            "count": self.count,
            "errors": int(self.errors),
            "levels": dict(sorted(self.levels.items())),
            "avg_response_time_ms": self.rt.avg,
            "p50_response_time_ms": pct(50),
            "p95_response_time_ms": pct(95),
            "p99_response_time_ms": pct(99),
        }


@dataclass
class KpiAccumulator:
    """Merges partial aggregation responses (see module docstring) into the KPI document."""

    interval_ms: int
    top_n: int = 10
    total: int = 0
    errors: int = 0
    levels: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[str] = field(default_factory=Counter)
    rt: _Stats = field(default_factory=_Stats)
    rt_hist: Counter[int] = field(default_factory=Counter)
    endpoints: dict[str, tuple[int, _Stats]] = field(default_factory=dict)
    services: dict[str, list[float]] = field(default_factory=dict)
    top_errors: Counter[str] = field(default_factory=Counter)
    over_time: dict[int, _TimeSlot] = field(default_factory=dict)

    def add(self, total: int, result: Mapping[str, Any]) -> None:
        """Fold in one partial: its matching-event count and its ``kpi_aggregations`` response."""
        self.total += int(total)
        self.errors += round(_sum_value(result.get("errors")))
        for b in _buckets(result, "levels"):
            self.levels[str(b["key"])] += int(b["doc_count"])
        for b in _buckets(result, "status_codes"):
            self.status_codes[_key_str(b["key"])] += int(b["doc_count"])
        self.rt.add(result.get("rt"))
        for b in _buckets(result, "rt_hist"):
            self.rt_hist[round(float(b["key"]))] += int(b["doc_count"])
        for b in _buckets(result, "endpoints"):
            key = str(b["key"])
            count, stats = self.endpoints.get(key, (0, _Stats()))
            stats.add(b.get("rt"))
            self.endpoints[key] = (count + int(b["doc_count"]), stats)
        for b in _buckets(result, "services"):
            entry = self.services.setdefault(str(b["key"]), [0.0, 0.0])
            entry[0] += int(b["doc_count"])
            entry[1] += _sum_value(b.get("errors"))
        for b in _buckets(result, "top_errors"):
            self.top_errors[str(b["key"])] += int(b["doc_count"])
        for b in _buckets(result, "over_time"):
            self.over_time.setdefault(round(float(b["key"])), _TimeSlot()).add(b)

    def slowest_endpoints(self) -> list[str]:
        """The ``top_n`` endpoints with the highest average response time (ties: by name)."""
        ranked = [(stats.avg, name) for name, (_, stats) in self.endpoints.items() if stats.avg is not None]
        ranked.sort(key=lambda item: (-(item[0] or 0.0), item[1]))
        return [name for _, name in ranked[: self.top_n]]

    def finish(
        self, active_users: int, endpoint_hists: Mapping[str, Mapping[int, int]] | None = None
    ) -> dict[str, Any]:
        """The KPI document; ``endpoint_hists`` are the merged second-pass histograms."""
        endpoint_hists = endpoint_hists or {}
        with_status = sum(self.status_codes.values())
        # server_error_rate: events with status_code >= 500 over events that *have* a status
        # code (plain log lines without one are not requests, so they must not dilute it).
        server_errors = sum(n for code, n in self.status_codes.items() if int(code) >= 500)
        slowest = []
        for name in self.slowest_endpoints():
            count, stats = self.endpoints[name]
            p95 = percentile_from_histogram(endpoint_hists.get(name, {}), 95, low=stats.low, high=stats.high)
            slowest.append(
                {
                    "endpoint": name,
                    "count": count,
                    "avg_response_time_ms": stats.avg,
                    "p95_response_time_ms": p95,
                }
            )
        rows = sorted(
            ((name, int(t), int(e)) for name, (t, e) in self.services.items()),
            key=lambda row: (-row[2], -(row[2] / row[1] if row[1] else 0.0), row[0]),
        )
        services = [
            {"service": name, "total": t, "errors": e, "error_rate": e / t if t else 0.0} for name, t, e in rows
        ]
        timeline = self._timeline()
        top_errors = sorted(self.top_errors.items(), key=lambda item: (-item[1], item[0]))[: self.top_n]

        def pct(p: float) -> float | None:
            return percentile_from_histogram(self.rt_hist, p, low=self.rt.low, high=self.rt.high)

        return {
            "total_logs": self.total,
            "error_count": self.errors,
            "error_rate": self.errors / self.total if self.total else 0.0,
            "server_error_rate": server_errors / with_status if with_status else 0.0,
            "avg_response_time_ms": self.rt.avg,
            "p50_response_time_ms": pct(50),
            "p95_response_time_ms": pct(95),
            "p99_response_time_ms": pct(99),
            "active_users": int(active_users),
            "levels": dict(sorted(self.levels.items())),
            "status_codes": dict(sorted(self.status_codes.items(), key=lambda item: int(item[0]))),
            "slowest_endpoints": slowest,
            "errors_over_time": [{"timestamp": t["timestamp"], "count": t["errors"]} for t in timeline],
            "events_over_time": timeline,
            "error_rate_by_service": services,
            "top_errors": [{"message": m, "count": n} for m, n in top_errors],
            "interval_ms": self.interval_ms,
        }

    def _timeline(self) -> list[dict[str, Any]]:
        if not self.over_time:
            return []
        first, last = min(self.over_time), max(self.over_time)
        empty = _TimeSlot()
        return [
            self.over_time.get(key, empty).to_dict(key)
            for key in range(first, last + self.interval_ms, self.interval_ms)
        ]


def merge_endpoint_histograms(results: Iterable[Mapping[str, Any]]) -> dict[str, Counter[int]]:
    """Merge second-pass responses (:func:`endpoint_percentile_aggregations`) per endpoint."""
    merged: dict[str, Counter[int]] = {}
    for result in results:
        for b in _buckets(result, "endpoints"):
            hist = merged.setdefault(str(b["key"]), Counter())
            for hb in (b.get("rt_hist") or {}).get("buckets") or []:
                hist[round(float(hb["key"]))] += int(hb["doc_count"])
    return merged
