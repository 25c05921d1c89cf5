"""Pure translation of queries, filters, sorts and documents to Elasticsearch (no I/O).

The query tree of ``shared.querylang.ast`` becomes structured DSL only (term, terms,
match, match_phrase, prefix, range, exists, bool): user text never reaches
``query_string`` or ``simple_query_string``. ``message`` uses the ``lw_message``
analyzer defined in the index template, which splits on non-alphanumerics and
lowercases like the tantivy backend, so both backends match the same words.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from shared.models import KEYWORD_FIELDS, LogEvent, epoch_ms, field_type
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.parser import resolve_time
from shared.store import kpi
from shared.store.base import Filters

DEFAULT_PREFIX: Final[str] = "logwarden-logs"
HIGHLIGHT_PRE: Final[str] = "\x00"
HIGHLIGHT_POST: Final[str] = "\x01"
HIGHLIGHT_FRAGMENT_CHARS: Final[int] = 200
KEYWORD_IGNORE_ABOVE: Final[int] = 8191
MAX_TOKEN_CHARS: Final[int] = 255

# Sort values that stand for "no value" so missing fields sort last in both directions
# and come back in ``hit["sort"]`` as plain JSON numbers (usable in search_after).
MISSING_SORT: Final[dict[str, dict[str, int | float]]] = {
    "status_code": {"asc": 2_147_483_647, "desc": -2_147_483_648},
    "response_time_ms": {"asc": 1.0e300, "desc": -1.0},  # response times are >= 0
}

_TOKEN_RE: Final = re.compile(r"[^\W_]+")


def index_name(ts: datetime, prefix: str = DEFAULT_PREFIX) -> str:
    """Daily index of an event time: ``logwarden-logs-YYYY.MM.dd`` (UTC)."""
    return f"{prefix}-{ts.astimezone(UTC):%Y.%m.%d}"


def index_pattern(prefix: str = DEFAULT_PREFIX) -> str:
    """Pattern matching every daily index."""
    return f"{prefix}-*"


def message_tokens(text: str) -> list[str]:
    """Python mirror of the ``lw_message`` analyzer: alphanumeric runs, lowercased, long ones dropped."""
    return [t.lower() for t in _TOKEN_RE.findall(text) if len(t) <= MAX_TOKEN_CHARS]


def index_template(prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """Body of the composable index template for the daily indices."""
    keyword = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
    # Every keyword field of the event, from the one list in shared.models.
    properties: dict[str, Any] = {name: dict(keyword) for name in KEYWORD_FIELDS}
    properties.update(
        {
            "timestamp": {"type": "date", "format": "strict_date_optional_time||epoch_millis"},
            "status_code": {"type": "integer"},
            # double, not float: float32 would make averages drift from the exact inputs.
            "response_time_ms": {"type": "double"},
            "message": {"type": "text", "analyzer": "lw_message"},
            "attrs": {"type": "flattened", "ignore_above": KEYWORD_IGNORE_ABOVE},
            kpi.IS_ERROR_FIELD: {"type": "byte"},
            kpi.RT_BUCKET_FIELD: {"type": "integer"},
            kpi.ERROR_MESSAGE_FIELD: {"type": "keyword"},
        }
    )
    return {
        "index_patterns": [index_pattern(prefix)],
        "priority": 200,
        "template": {
            "settings": {
                "number_of_shards": 1,
                "auto_expand_replicas": "0-1",
                "refresh_interval": "1s",
                "codec": "best_compression",
                "analysis": {
                    "analyzer": {
                        "lw_message": {
                            "type": "custom",
                            "tokenizer": "lw_alnum",
                            "filter": ["lowercase", "lw_max_length"],
                        }
                    },
                    "tokenizer": {"lw_alnum": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
                    "filter": {"lw_max_length": {"type": "length", "max": MAX_TOKEN_CHARS}},
                },
            },
            "mappings": {"dynamic": "strict", "_source": {"enabled": True}, "properties": properties},
        },
    }


def es_document(event: LogEvent) -> dict[str, Any]:
    """The indexed document: the wire dict plus the derived KPI fields."""
    return {**event.to_dict(), **kpi.derived_fields(event)}


# --- queries -----------------------------------------------------------------------------------


def _time_ms(value: str) -> int:
    return epoch_ms(resolve_time(value))


def _exact(name: str, value: str) -> dict[str, Any]:
    ftype = field_type(name)
    if ftype == "keyword":
        return {"term": {name: value}}
    if ftype == "integer":
        if name == "status_code":
            low, high = kpi.status_code_bounds(value)
        else:
            low = high = int(value)
        return {"term": {name: low}} if low == high else {"range": {name: {"gte": low, "lte": high}}}
    if ftype == "float":
        return {"term": {name: float(value)}}
    if ftype == "date":
        ms = _time_ms(value)
        return {"range": {name: {"gte": ms, "lte": ms, "format": "epoch_millis"}}}
    raise ValueError(f"unknown field {name!r}")


def _text(value: str, *, phrase: bool) -> dict[str, Any]:
    tokens = message_tokens(value)
    if phrase or len(tokens) > 1:
        # Several tokens from one word ("foo-bar") must stay adjacent, as in tantivy.
        return {"match_phrase": {"message": value}}
    return {"match": {"message": {"query": value, "operator": "and", "zero_terms_query": "none"}}}


def _range(node: Range) -> dict[str, Any]:
    ftype = field_type(node.field)
    if ftype is None:
        raise ValueError(f"unknown field {node.field!r}")
    if ftype == "text":
        raise ValueError(f"range queries are not supported on field {node.field!r}")
    if node.lower is None and node.upper is None:
        return {"exists": {"field": node.field}}

    def convert(value: str) -> Any:
        if ftype == "integer":
            return int(value)
        if ftype == "float":
            return float(value)
        if ftype == "date":
            return _time_ms(value)
        return value

    body: dict[str, Any] = {}
    if node.lower is not None:
        body["gte" if node.include_lower else "gt"] = convert(node.lower)
    if node.upper is not None:
        body["lte" if node.include_upper else "lt"] = convert(node.upper)
    if ftype == "date":
        body["format"] = "epoch_millis"
    return {"range": {node.field: body}}


def to_es_query(node: Node) -> dict[str, Any]:
    """Translate a query tree to Elasticsearch DSL (ValueError on unknown fields or bad values)."""
    if isinstance(node, MatchAll):
        return {"match_all": {}}
    if isinstance(node, Term | Phrase):
        ftype = field_type(node.field)
        if ftype is None:
            raise ValueError(f"unknown field {node.field!r}")
        if ftype == "text":
            return _text(node.value, phrase=isinstance(node, Phrase))
        return _exact(node.field, node.value)
    if isinstance(node, Prefix):
        ftype = field_type(node.field)
        if ftype == "keyword":
            return {"prefix": {node.field: {"value": node.value}}}
        if ftype == "text":
            return {"prefix": {"message": {"value": node.value.lower()}}}
        raise ValueError(f"prefix queries are not supported on field {node.field!r}")
    if isinstance(node, Range):
        return _range(node)
    if isinstance(node, Not):
        return {"bool": {"must_not": [to_es_query(node.child)]}}
    if isinstance(node, And):
        if not node.children:
            return {"match_all": {}}
        return {"bool": {"must": [to_es_query(c) for c in node.children]}}
    if isinstance(node, Or):
        if not node.children:
            return {"match_none": {}}
        return {"bool": {"should": [to_es_query(c) for c in node.children], "minimum_should_match": 1}}
    raise ValueError(f"unsupported query node {type(node).__name__}")


def filters_to_es(filters: Filters) -> list[dict[str, Any]]:
    """Structured filters as a list of filter clauses (ANDed by the caller)."""
    out: list[dict[str, Any]] = []
    for name, values in (
        ("level", filters.levels),
        ("service", filters.services),
        ("server", filters.servers),
        ("endpoint", filters.endpoints),
        ("tenant_id", filters.tenant_ids),
        ("source", filters.sources),
    ):
        if values:
            out.append({"terms": {name: list(values)}})
    if filters.status_codes:
        parts: list[dict[str, Any]] = []
        for code in filters.status_codes:
            low, high = kpi.status_code_bounds(code)
            parts.append(
                {"term": {"status_code": low}} if low == high else {"range": {"status_code": {"gte": low, "lte": high}}}
            )
        out.append({"bool": {"should": parts, "minimum_should_match": 1}})
    if filters.time_from is not None or filters.time_to is not None:
        body: dict[str, Any] = {"format": "epoch_millis"}
        if filters.time_from is not None:
            body["gte"] = epoch_ms(filters.time_from)
        if filters.time_to is not None:
            body["lt"] = epoch_ms(filters.time_to)
        out.append({"range": {"timestamp": body}})
    return out


def build_query(node: Node, filters: Filters) -> dict[str, Any]:
    """The query tree (scored part) ANDed with the filters (filter context)."""
    clauses = filters_to_es(filters)
    if isinstance(node, MatchAll) and not clauses:
        return {"match_all": {}}
    body: dict[str, Any] = {}
    if not isinstance(node, MatchAll):
        body["must"] = [to_es_query(node)]
    if clauses:
        body["filter"] = clauses
    return {"bool": body}


def sort_clause(sort: str, order: str) -> list[dict[str, Any]]:
    """``[sort field, id]`` in the same direction; missing values last, as stable JSON numbers."""
    if sort not in ("timestamp", "response_time_ms", "status_code"):
        raise ValueError(f"cannot sort by {sort!r}")
    if order not in ("asc", "desc"):
        raise ValueError(f"invalid order {order!r}")
    first: dict[str, Any] = {"order": order}
    if sort in MISSING_SORT:
        first["missing"] = MISSING_SORT[sort][order]
    return [{sort: first}, {"id": {"order": order}}]


def highlight_clause(node: Node) -> dict[str, Any] | None:
    """Highlighting of ``message`` with \\x00/\\x01 markers, driven by the query tree only."""
    if isinstance(node, MatchAll):
        return None
    return {
        "pre_tags": [HIGHLIGHT_PRE],
        "post_tags": [HIGHLIGHT_POST],
        "require_field_match": True,
        "highlight_query": to_es_query(node),
        "fields": {"message": {"number_of_fragments": 1, "fragment_size": HIGHLIGHT_FRAGMENT_CHARS}},
    }


def search_body(
    node: Node,
    filters: Filters,
    sort: str,
    order: str,
    size: int,
    search_after: list[Any] | None = None,
    highlight: bool = True,
) -> dict[str, Any]:
    """Complete body of a search request (exact total, sort with id tie-break, search_after)."""
    body: dict[str, Any] = {
        "query": build_query(node, filters),
        "sort": sort_clause(sort, order),
        "size": size,
        "track_total_hits": True,
        "_source": {"excludes": list(kpi.INTERNAL_FIELDS)},
    }
    if search_after is not None:
        body["search_after"] = search_after
    if highlight:
        clause = highlight_clause(node)
        if clause is not None:
            body["highlight"] = clause
    return body
