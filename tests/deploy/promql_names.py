"""Metric names in PromQL expressions, and the names logwarden may use.

Shared by the static deploy tests (tests/deploy/test_deploy.py: rules and dashboards may only
use metrics declared in shared/metrics.py, Prometheus' own series like ``up``, and the standard
process_*/python_* collectors) and by the runtime test that scrapes the running services.

The extractor is deliberately small rather than a PromQL parser. It removes what can never be a
metric name (string literals, label matchers in ``{...}``, ranges and subqueries in ``[...]``,
Grafana variables, ``by (...)``/``without (...)``/``on (...)``/``ignoring (...)``/
``group_left (...)``/``group_right (...)`` label lists, numbers and durations), then keeps every
remaining identifier that is not a keyword and is not called like a function.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from types import ModuleType

# Identifiers that are operators or modifiers, never metric names.
KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "offset",
        "atop",
        "start",
        "end",
        "inf",
        "nan",
    }
)

# Series Prometheus itself writes for every target or alert.
PROMETHEUS_BUILTINS = frozenset(
    {
        "up",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
        "ALERTS",
        "ALERTS_FOR_STATE",
    }
)

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+|\[\[\w+\]\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE)
_COMMENT = re.compile(r"#[^\n]*")
# An identifier not glued to a preceding word character, dot or digit (so 1e3, 0.95, 5m are skipped).
_IDENTIFIER = re.compile(r"(?<![\w.:])([A-Za-z_:][A-Za-z0-9_:]*)")

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def family_name(sample: str) -> str:
    """The family a sample name belongs to: ``_bucket``, ``_sum``, ``_count``, ``_total`` and
    ``_created`` stripped (``http_request_latency_seconds_bucket`` -> ``http_request_latency_seconds``)."""
    for suffix in (*HISTOGRAM_SUFFIXES, "_total", "_created"):
        if sample.endswith(suffix) and len(sample) > len(suffix):
            return sample[: -len(suffix)]
    return sample


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (exactly as written, suffixes included)."""
    text = _COMMENT.sub(" ", expr)
    text = _STRING.sub(" ", text)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    text = _BRACES.sub(" ", text)
    previous = None
    while previous != text:  # nested subqueries: x[5m:1m] inside rate(...)[1h:]
        previous = text
        text = _BRACKETS.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names: set[str] = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(1)
        if name.lower() in KEYWORDS:
            continue
        rest = text[match.end() :].lstrip()
        if rest.startswith("("):  # a function or an aggregation operator
            continue
        names.add(name)
    return names


def family_samples(name: str, metric_type: str) -> set[str]:
    """The sample names prometheus_client exposes for one metric family."""
    if metric_type == "counter":
        return {f"{name}_total", f"{name}_created"}
    if metric_type == "histogram":  # the bare family name is no series of its own
        return {f"{name}{suffix}" for suffix in (*HISTOGRAM_SUFFIXES, "_created")}
    if metric_type == "summary":
        return {name, f"{name}_sum", f"{name}_count", f"{name}_created"}
    if metric_type == "info":
        return {f"{name}_info"}
    return {name}


def declared_names(module: ModuleType) -> set[str]:
    """Every sample name the metric objects defined in ``module`` can expose."""
    from prometheus_client.metrics import MetricWrapperBase

    names: set[str] = set()
    for value in vars(module).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names |= family_samples(family.name, family.type)
    return names


def default_collector_names() -> set[str]:
    """Sample names of prometheus_client's standard process_*, python_* and GC collectors."""
    from prometheus_client import gc_collector, platform_collector, process_collector

    names: set[str] = set()
    collectors: Iterable[object] = (
        process_collector.PROCESS_COLLECTOR,
        platform_collector.PLATFORM_COLLECTOR,
        gc_collector.GC_COLLECTOR,
    )
    for collector in collectors:
        for family in collector.collect():  # type: ignore[attr-defined]
            names |= {sample.name for sample in family.samples}
    return names


def allowed_names() -> set[str]:
    """Names rules and dashboards may use: shared/metrics.py, Prometheus built-ins, collectors."""
    import shared.metrics

    return declared_names(shared.metrics) | PROMETHEUS_BUILTINS | default_collector_names()


def unknown_names(exprs: Iterable[str], allowed: set[str] | None = None) -> dict[str, set[str]]:
    """For each expression using names outside ``allowed``, those names."""
    allowed = allowed_names() if allowed is None else allowed
    result: dict[str, set[str]] = {}
    for expr in exprs:
        unknown = metric_names(expr) - allowed
        if unknown:
            result[expr] = unknown
    return result
