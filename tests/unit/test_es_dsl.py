"""The Elasticsearch translation, checked as exact DSL (pure: runs without a server)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.models import LogEvent
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.parser import parse
from shared.store import es_dsl, kpi
from shared.store.base import Filters

MS_2024_05_02 = 1714608000000  # 2024-05-02T00:00:00Z

CASES: list[tuple[Node, dict[str, Any]]] = [
    (MatchAll(), {"match_all": {}}),
    (
        Term("message", "Timeout"),
        {"match": {"message": {"query": "Timeout", "operator": "and", "zero_terms_query": "none"}}},
    ),
    (Term("message", "failed-login"), {"match_phrase": {"message": "failed-login"}}),
    (Phrase("message", "connection failed"), {"match_phrase": {"message": "connection failed"}}),
    (Phrase("message", "single"), {"match_phrase": {"message": "single"}}),
    (Term("level", "ERROR"), {"term": {"level": "ERROR"}}),
    (Phrase("endpoint", "/api/a b"), {"term": {"endpoint": "/api/a b"}}),
    (Term("attrs.region", "eu-west"), {"term": {"attrs.region": "eu-west"}}),
    (Term("attrs.app.version", "1.2"), {"term": {"attrs.app.version": "1.2"}}),
    (Term("status_code", "500"), {"term": {"status_code": 500}}),
    (Term("status_code", "5xx"), {"range": {"status_code": {"gte": 500, "lte": 599}}}),
    (Term("response_time_ms", "12.5"), {"term": {"response_time_ms": 12.5}}),
    (
        Term("timestamp", "2024-05-02T00:00:00Z"),
        {"range": {"timestamp": {"gte": MS_2024_05_02, "lte": MS_2024_05_02, "format": "epoch_millis"}}},
    ),
    (Prefix("endpoint", "/api/users"), {"prefix": {"endpoint": {"value": "/api/users"}}}),
    (Prefix("attrs.region", "us"), {"prefix": {"attrs.region": {"value": "us"}}}),
    (Prefix("message", "User"), {"prefix": {"message": {"value": "user"}}}),
    (Range("status_code", "500", None), {"range": {"status_code": {"gte": 500}}}),
    (Range("status_code", "200", "404", False, False), {"range": {"status_code": {"gt": 200, "lt": 404}}}),
    (Range("response_time_ms", None, "5", True, True), {"range": {"response_time_ms": {"lte": 5.0}}}),
    (
        Range("timestamp", "2024-05-02T00:00:00Z", "1714694400000", True, False),
        {"range": {"timestamp": {"gte": MS_2024_05_02, "lt": MS_2024_05_02 + 86_400_000, "format": "epoch_millis"}}},
    ),
    (Range("service", "b", "x"), {"range": {"service": {"gte": "b", "lte": "x"}}}),
    (Range("attrs.region", "a", "f", True, False), {"range": {"attrs.region": {"gte": "a", "lt": "f"}}}),
    (Range("status_code", None, None), {"exists": {"field": "status_code"}}),
    (Not(Term("level", "INFO")), {"bool": {"must_not": [{"term": {"level": "INFO"}}]}}),
    (
        And((Term("service", "api"), Term("level", "ERROR"))),
        {"bool": {"must": [{"term": {"service": "api"}}, {"term": {"level": "ERROR"}}]}},
    ),
    (
        Or((Term("service", "api"), Term("service", "web"))),
        {"bool": {"should": [{"term": {"service": "api"}}, {"term": {"service": "web"}}], "minimum_should_match": 1}},
    ),
    (And(()), {"match_all": {}}),
    (Or(()), {"match_none": {}}),
]


@pytest.mark.parametrize(("node", "expected"), CASES, ids=[repr(n) for n, _ in CASES])
def test_to_es_query(node: Node, expected: dict[str, Any]) -> None:
    assert es_dsl.to_es_query(node) == expected


def test_parsed_query_translates_to_nested_bool() -> None:
    node = parse('(service:web OR service:worker) AND NOT level:DEBUG "disk full"')
    assert es_dsl.to_es_query(node) == {
        "bool": {
            "must": [
                {
                    "bool": {
                        "should": [{"term": {"service": "web"}}, {"term": {"service": "worker"}}],
                        "minimum_should_match": 1,
                    }
                },
                {"bool": {"must_not": [{"term": {"level": "DEBUG"}}]}},
                {"match_phrase": {"message": "disk full"}},
            ]
        }
    }


@pytest.mark.parametrize(
    "node",
    [
        Term("nosuch", "x"),
        Term("status_code", "abc"),
        Term("status_code", "5zz"),
        Term("response_time_ms", "fast"),
        Term("timestamp", "yesterday-ish"),
        Prefix("status_code", "5"),
        Range("message", "a", "b"),
        Range("nosuch", "a", "b"),
    ],
)
def test_invalid_nodes_raise_value_error(node: Node) -> None:
    with pytest.raises(ValueError):
        es_dsl.to_es_query(node)


def test_no_query_string_ever() -> None:
    text = str([es_dsl.to_es_query(n) for n, _ in CASES])
    assert "query_string" not in text


def test_filters_to_es() -> None:
    filters = Filters(
        levels=("ERROR", "CRITICAL"),
        services=("api",),
        servers=("srv-1",),
        endpoints=("/a",),
        tenant_ids=("t1",),
        sources=("http",),
        status_codes=("5xx", "404"),
        time_from=datetime(2024, 5, 2, tzinfo=UTC),
        time_to=datetime(2024, 5, 2, 2, 0, tzinfo=timezone(timedelta(hours=2))),
    )
    assert es_dsl.filters_to_es(filters) == [
        {"terms": {"level": ["ERROR", "CRITICAL"]}},
        {"terms": {"service": ["api"]}},
        {"terms": {"server": ["srv-1"]}},
        {"terms": {"endpoint": ["/a"]}},
        {"terms": {"tenant_id": ["t1"]}},
        {"terms": {"source": ["http"]}},
        {
            "bool": {
                "should": [{"range": {"status_code": {"gte": 500, "lte": 599}}}, {"term": {"status_code": 404}}],
                "minimum_should_match": 1,
            }
        },
        {"range": {"timestamp": {"format": "epoch_millis", "gte": MS_2024_05_02, "lt": MS_2024_05_02}}},
    ]
    assert es_dsl.filters_to_es(Filters()) == []
    with pytest.raises(ValueError):
        es_dsl.filters_to_es(Filters(status_codes=("2x",)))


def test_build_query_combines_tree_and_filters() -> None:
    assert es_dsl.build_query(MatchAll(), Filters()) == {"match_all": {}}
    assert es_dsl.build_query(MatchAll(), Filters(levels=("INFO",))) == {
        "bool": {"filter": [{"terms": {"level": ["INFO"]}}]}
    }
    assert es_dsl.build_query(Term("level", "INFO"), Filters(services=("api",))) == {
        "bool": {"must": [{"term": {"level": "INFO"}}], "filter": [{"terms": {"service": ["api"]}}]}
    }


def test_sort_and_search_after() -> None:
    assert es_dsl.sort_clause("timestamp", "desc") == [
        {"timestamp": {"order": "desc"}},
        {"id": {"order": "desc"}},
    ]
    assert es_dsl.sort_clause("status_code", "asc") == [
        {"status_code": {"order": "asc", "missing": 2_147_483_647}},
        {"id": {"order": "asc"}},
    ]
    assert es_dsl.sort_clause("response_time_ms", "desc") == [
        {"response_time_ms": {"order": "desc", "missing": -1.0}},
        {"id": {"order": "desc"}},
    ]
    with pytest.raises(ValueError):
        es_dsl.sort_clause("message", "asc")
    with pytest.raises(ValueError):
        es_dsl.sort_clause("timestamp", "up")
    body = es_dsl.search_body(
        parse("timeout"), Filters(), "timestamp", "desc", 51, search_after=[MS_2024_05_02, "01ABC"]
    )
    assert body == {
        "query": {
            "bool": {
                "must": [{"match": {"message": {"query": "timeout", "operator": "and", "zero_terms_query": "none"}}}]
            }
        },
        "sort": [{"timestamp": {"order": "desc"}}, {"id": {"order": "desc"}}],
        "size": 51,
        "track_total_hits": True,
        "_source": {"excludes": ["is_error", "rt_bucket", "error_message"]},
        "search_after": [MS_2024_05_02, "01ABC"],
        "highlight": {
            "pre_tags": ["\x00"],
            "post_tags": ["\x01"],
            "require_field_match": True,
            "highlight_query": {
                "match": {"message": {"query": "timeout", "operator": "and", "zero_terms_query": "none"}}
            },
            "fields": {"message": {"number_of_fragments": 1, "fragment_size": 200}},
        },
    }
    plain = es_dsl.search_body(MatchAll(), Filters(), "timestamp", "asc", 10, highlight=True)
    assert "highlight" not in plain and "search_after" not in plain


def test_index_names_and_template() -> None:
    ts = datetime(2024, 5, 2, 1, 30, tzinfo=timezone(timedelta(hours=3)))  # 2024-05-01 22:30 UTC
    assert es_dsl.index_name(ts) == "logwarden-logs-2024.05.01"
    assert es_dsl.index_name(ts, "custom") == "custom-2024.05.01"
    assert es_dsl.index_pattern() == "logwarden-logs-*"
    template = es_dsl.index_template()
    assert template["index_patterns"] == ["logwarden-logs-*"]
    settings = template["template"]["settings"]
    assert settings["refresh_interval"] == "1s"
    mappings = template["template"]["mappings"]
    assert mappings["dynamic"] == "strict"
    props = mappings["properties"]
    assert props["attrs"]["type"] == "flattened"
    assert props["message"] == {"type": "text", "analyzer": "lw_message"}
    assert props["timestamp"]["type"] == "date"
    assert props["status_code"] == {"type": "integer"}
    assert props["response_time_ms"] == {"type": "double"}
    assert props["level"]["type"] == "keyword" and props["id"]["type"] == "keyword"
    for name in kpi.INTERNAL_FIELDS:
        assert name in props
    assert settings["analysis"]["analyzer"]["lw_message"]["tokenizer"] == "lw_alnum"


def test_es_document_has_wire_fields_and_derived_fields() -> None:
    event = LogEvent(
        id="01HXYZ",
        timestamp=datetime(2024, 5, 2, tzinfo=UTC),
        level="ERROR",
        message="boom",
        response_time_ms=12.5,
        attrs={"a.b": "c"},
    )
    doc = es_dsl.es_document(event)
    assert doc == {
        **event.to_dict(),
        "is_error": 1,
        "rt_bucket": kpi.rt_bucket(12.5),
        "error_message": "boom",
    }
    assert doc["timestamp"] == "2024-05-02T00:00:00.000Z"


def test_message_tokens_mirror_the_analyzer() -> None:
    assert es_dsl.message_tokens("Héllo WÖRLD failed-login 日本語 x_y") == [
        "héllo",
        "wörld",
        "failed",
        "login",
        "日本語",
        "x",
        "y",
    ]
    assert es_dsl.message_tokens("a" * 300) == []


def test_rt_buckets_are_one_percent_wide() -> None:
    for value in (0.0015, 1.0, 12.5, 250.0, 99_999.0):
        bucket = kpi.rt_bucket(value)
        assert kpi.rt_bucket_value(bucket) == pytest.approx(value, rel=0.0051)
    assert kpi.rt_bucket(0.0) == 0 and kpi.rt_bucket_value(0) == 0.0
    assert kpi.percentile_from_histogram({}, 50) is None
    hist = {kpi.rt_bucket(v): 1 for v in (10.0, 20.0, 30.0)}
    assert kpi.percentile_from_histogram(hist, 50) == pytest.approx(20.0, rel=0.005)
    assert kpi.percentile_from_histogram(hist, 75) == pytest.approx(25.0, rel=0.005)
    assert kpi.percentile_from_histogram(hist, 100, high=30.0) == 30.0


def test_kpi_aggregations_per_backend() -> None:
    es = kpi.kpi_aggregations(60_000, "elasticsearch")
    tv = kpi.kpi_aggregations(60_000, "tantivy")
    assert es["over_time"]["date_histogram"] == {"field": "timestamp", "fixed_interval": "60000ms", "min_doc_count": 1}
    assert tv["over_time"]["histogram"] == {"field": "timestamp", "interval": 60_000, "min_doc_count": 1}
    assert {k: v for k, v in es.items() if k != "over_time"} == {k: v for k, v in tv.items() if k != "over_time"}
    assert kpi.effective_interval(1, 10_000_000) == 5000
    assert kpi.effective_interval(60_000, 86_400_000) == 60_000
    assert kpi.effective_interval(1000, None) == 1000
