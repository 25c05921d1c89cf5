"""Embedded LogStore: one tantivy index per UTC day under ``path/YYYY-MM-DD/``.

Schema (every field is single-valued except ``attrs_kv``):

* ``_source`` (stored bytes): the event's wire JSON, the only stored field; hits are
  rebuilt from it in one decode. The tantivy Python binding does not expose the doc
  store compressor, so blocks use tantivy's default (lz4); see docs/benchmarks.md.
* ``id`` raw, indexed, fast (idempotent writes delete by this term; last-level sort).
* ``tb`` u64 indexed+fast tie-breaker derived from the id (the top 64 bits of a ULID,
  which keep ULID order; a hash for other ids). Hits are ordered by
  ``(sort field, tb, id)``: tantivy sorts by one fast field at a time and has no range
  queries on text, so a numeric second key is what makes search_after exact and cheap.
* keyword fields raw-tokenised (``basic`` postings); ``level``, ``service``,
  ``endpoint`` are also fast fields because the KPI aggregations group by them.
* ``timestamp`` i64 epoch milliseconds, indexed + fast (tantivy's date fast fields
  keep only second precision), ``status_code`` i64, ``response_time_ms`` f64.
* ``message`` text with the ``lw_message`` analyzer: tantivy's simple tokenizer
  (split on non-alphanumerics) + lowercase, dropping tokens of 256+ bytes (the
  "default" analyzer drops them from 40 bytes, which loses hashes and long ids).
* ``attrs_kv``: one raw term ``key\\x1fvalue`` per attribute, so ``attrs.key:value``
  is a term query, prefixes are regex queries and autocomplete is a term walk.
* ``is_error``, ``rt_bucket``, ``error_message``: derived fields of ``shared.store.kpi``.

Threads: every write, delete and writer close runs on one dedicated writer thread
(tantivy's IndexWriter is single-writer per index); searches and aggregations run
in ``asyncio.to_thread`` on searchers, which are safe to share. A write commits
each touched day, then reloads its reader, so the batch is durable and searchable
when ``write`` returns.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import threading
import time
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
import tantivy
from tantivy import FieldType, Occur, Order, Query

from shared.health import CheckResult
from shared.models import KEYWORD_FIELDS, LogEvent, epoch_ms, field_type, to_millis
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.parser import resolve_time
from shared.store import kpi
from shared.store.base import Filters, LogStore, SearchRequest, SearchResult, StatsRequest
from shared.store.cursor import decode_cursor, encode_cursor

T = TypeVar("T")

MAX_LIMIT: Final[int] = 1000
ATTR_SEP: Final[str] = "\x1f"
MESSAGE_ANALYZER: Final[str] = "lw_message"
MAX_TOKEN_BYTES: Final[int] = 256
FAST_KEYWORDS: Final[frozenset[str]] = frozenset({"id", "level", "service", "endpoint"})
_DAY_RE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_CROCKFORD: Final[str] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Crockford base32 digits -> the digits of Python's int(..., 32).
_CROCKFORD_TO_BASE32: Final[dict[int, str]] = {
    **{ord(c): "0123456789abcdefghijklmnopqrstuv"[i] for i, c in enumerate(_CROCKFORD)},
}
_MAX_RANGE_TERMS: Final[int] = 100_000
_HIGHLIGHT_CHARS: Final[int] = 200
_GROUP_FETCH: Final[int] = 1000
_NUMERIC: Final[dict[str, FieldType]] = {
    "timestamp": FieldType.Integer,
    "status_code": FieldType.Integer,
    "response_time_ms": FieldType.Float,
    "tb": FieldType.Unsigned,
}


def tie_breaker(event_id: str) -> int:
    """u64 second sort key of an id: top 64 bits of a ULID (keeps ULID order), else a hash."""
    if len(event_id) == 26 and event_id[0] in "01234567":
        try:
            return int(event_id.translate(_CROCKFORD_TO_BASE32), 32) >> 64
        except ValueError:
            pass
    return int.from_bytes(hashlib.blake2b(event_id.encode("utf-8"), digest_size=8).digest(), "big")


def _message_analyzer() -> Any:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.remove_long(MAX_TOKEN_BYTES))
        .filter(tantivy.Filter.lowercase())
        .build()
    )


def build_schema() -> tantivy.Schema:
    """The tantivy schema of a day index (see module docstring)."""
    sb = tantivy.SchemaBuilder()
    sb.add_bytes_field("_source", stored=True)
    sb.add_text_field("id", fast=True, tokenizer_name="raw", index_option="basic")
    sb.add_unsigned_field("tb", indexed=True, fast=True)
    for name in KEYWORD_FIELDS:
        if name != "id":
            sb.add_text_field(name, fast=name in FAST_KEYWORDS, tokenizer_name="raw", index_option="basic")
    sb.add_integer_field("timestamp", indexed=True, fast=True)
    sb.add_integer_field("status_code", indexed=True, fast=True)
    sb.add_float_field("response_time_ms", indexed=True, fast=True)
    sb.add_text_field("message", tokenizer_name=MESSAGE_ANALYZER, index_option="position")
    sb.add_text_field("attrs_kv", tokenizer_name="raw", index_option="basic")
    sb.add_integer_field(kpi.IS_ERROR_FIELD, fast=True)
    sb.add_integer_field(kpi.RT_BUCKET_FIELD, fast=True)
    sb.add_text_field(kpi.ERROR_MESSAGE_FIELD, fast=True, tokenizer_name="raw", index_option="basic")
    return sb.build()


def _regex_escape(text: str) -> str:
    """Escape for tantivy's (Rust) regex syntax: ASCII alphanumerics as-is, the rest as ``\\x{..}``."""
    return "".join(c if c.isascii() and c.isalnum() else f"\\x{{{ord(c):x}}}" for c in text)


def _day_of(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d")


def _day_start(day: str) -> datetime:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)


def _and(*queries: Query) -> Query:
    return Query.boolean_query([(Occur.Must, q) for q in queries])


def _and_not(query: Query, excluded: Query) -> Query:
    return Query.boolean_query([(Occur.Must, query), (Occur.MustNot, excluded)])


@dataclass(slots=True)
class _Hit:
    value: int | float | None  # sort field value; None = field missing (sorted last)
    tb: int
    addr: Any
    searcher: Any
    day: str
    id: str | None = None


class _Translator:
    """Query tree + filters -> tantivy Query, for one day's searcher."""

    def __init__(self, schema: tantivy.Schema, searcher: Any, analyzer: Any) -> None:
        self.schema = schema
        self.searcher = searcher
        self.analyzer = analyzer

    # -- leaves ---------------------------------------------------------------------

    def tokens(self, text: str) -> list[str]:
        return list(self.analyzer.analyze(text))

    def term(self, name: str, value: Any) -> Query:
        return Query.term_query(self.schema, name, value)

    def range(self, name: str, lower: Any, upper: Any, include_lower: bool = True, include_upper: bool = True) -> Query:
        if lower is None and upper is None:
            return Query.exists_query(name)
        return Query.range_query(
            self.schema,
            name,
            _NUMERIC[name],
            lower,
            upper,
            include_lower if lower is not None else True,
            include_upper if upper is not None else True,
        )

    def text(self, value: str) -> Query:
        """A word or a phrase on ``message``: one token is a term, several must be adjacent
        (so ``foo-bar`` matches the phrase, as in Elasticsearch's match_phrase)."""
        words: list[str | tuple[int, str]] = list(self.tokens(value))
        if not words:
            return Query.empty_query()
        if len(words) == 1:
            return self.term("message", words[0])
        return Query.phrase_query(self.schema, "message", words)

    def exact(self, name: str, value: str) -> Query:
        """``field:value`` / ``field:"a b"`` on any non-text field."""
        ftype = field_type(name)
        if ftype is None:
            raise ValueError(f"unknown field {name!r}")
        if name.startswith("attrs."):
            return self.term("attrs_kv", name[6:] + ATTR_SEP + value)
        if ftype == "keyword":
            return self.term(name, value)
        if ftype == "integer":
            low, high = kpi.status_code_bounds(value) if name == "status_code" else (int(value), int(value))
            return self.term(name, low) if low == high else self.range(name, low, high)
        if ftype == "float":
            return self.term(name, float(value))
        if ftype == "date":
            return self.term(name, epoch_ms(resolve_time(value)))
        return self.text(value)

    def prefix(self, name: str, value: str) -> Query:
        ftype = field_type(name)
        if name.startswith("attrs."):
            return Query.regex_query(self.schema, "attrs_kv", _regex_escape(name[6:] + ATTR_SEP + value) + "(?s:.)*")
        if ftype == "keyword":
            return Query.regex_query(self.schema, name, _regex_escape(value) + "(?s:.)*")
        if ftype == "text":
            return Query.regex_query(self.schema, "message", _regex_escape(value.lower()) + "(?s:.)*")
        raise ValueError(f"prefix queries are not supported on field {name!r}")

    def value_range(self, node: Range) -> Query:
        name, ftype = node.field, field_type(node.field)
        if ftype is None:
            raise ValueError(f"unknown field {name!r}")
        if ftype == "integer":
            lo = int(node.lower) if node.lower is not None else None
            hi = int(node.upper) if node.upper is not None else None
        elif ftype == "float":
            lo = float(node.lower) if node.lower is not None else None  # type: ignore[assignment]
            hi = float(node.upper) if node.upper is not None else None  # type: ignore[assignment]
        elif ftype == "date":
            lo = epoch_ms(resolve_time(node.lower)) if node.lower is not None else None
            hi = epoch_ms(resolve_time(node.upper)) if node.upper is not None else None
        elif ftype == "keyword":
            return self.keyword_range(node)
        else:
            raise ValueError(f"range queries are not supported on field {name!r}")
        return self.range(name, lo, hi, node.include_lower, node.include_upper)

    def keyword_range(self, node: Range) -> Query:
        """Lexicographic range on a keyword: the matching terms, found by walking the dictionary."""
        if node.field.startswith("attrs."):
            index_field, key_prefix = "attrs_kv", node.field[6:] + ATTR_SEP
        else:
            index_field, key_prefix = node.field, ""
        terms = self.searcher.terms_with_prefix(index_field, key_prefix)
        if len(terms) > _MAX_RANGE_TERMS:
            raise ValueError(f"range on {node.field!r} matches too many distinct values")
        selected = []
        for term, _count in terms:
            value = term[len(key_prefix) :]
            if node.lower is not None and (value < node.lower or (value == node.lower and not node.include_lower)):
                continue
            if node.upper is not None and (value > node.upper or (value == node.upper and not node.include_upper)):
                continue
            selected.append(term)
        if not selected:
            return Query.empty_query()
        return Query.term_set_query(self.schema, index_field, selected)

    # -- tree -------------------------------------------------------------------------

    def node(self, node: Node) -> Query:
        if isinstance(node, MatchAll):
            return Query.all_query()
        if isinstance(node, Term):
            if field_type(node.field) == "text":
                return self.text(node.value)
            return self.exact(node.field, node.value)
        if isinstance(node, Phrase):
            if field_type(node.field) == "text":
                return self.text(node.value)
            return self.exact(node.field, node.value)
        if isinstance(node, Prefix):
            return self.prefix(node.field, node.value)
        if isinstance(node, Range):
            return self.value_range(node)
        if isinstance(node, Not):
            return _and_not(Query.all_query(), self.node(node.child))
        if isinstance(node, And):
            if not node.children:
                return Query.all_query()
            return Query.boolean_query([(Occur.Must, self.node(c)) for c in node.children])
        if isinstance(node, Or):
            if not node.children:
                return Query.empty_query()
            return Query.boolean_query([(Occur.Should, self.node(c)) for c in node.children])
        raise ValueError(f"unsupported query node {type(node).__name__}")

    def filters(self, filters: Filters) -> list[Query]:
        out: list[Query] = []
        for name, values in (
            ("level", filters.levels),
            ("service", filters.services),
            ("server", filters.servers),
            ("endpoint", filters.endpoints),
            ("tenant_id", filters.tenant_ids),
            ("source", filters.sources),
        ):
            if values:
                out.append(Query.term_set_query(self.schema, name, list(values)))
        if filters.status_codes:
            parts = []
            for code in filters.status_codes:
                low, high = kpi.status_code_bounds(code)
                parts.append(
                    (
                        Occur.Should,
                        self.term("status_code", low) if low == high else self.range("status_code", low, high),
                    )
                )
            out.append(Query.boolean_query(parts))
        if filters.time_from is not None or filters.time_to is not None:
            lo = epoch_ms(filters.time_from) if filters.time_from is not None else None
            hi = epoch_ms(filters.time_to) if filters.time_to is not None else None
            out.append(self.range("timestamp", lo, hi, True, False))
        return out

    def build(self, node: Node, filters: Filters) -> Query:
        parts = [] if isinstance(node, MatchAll) else [self.node(node)]
        parts.extend(self.filters(filters))
        if not parts:
            return Query.all_query()
        if len(parts) == 1:
            return parts[0]
        return _and(*parts)

    def highlight_query(self, node: Node) -> Query | None:
        """Positive message clauses of the tree (what to highlight), or None."""
        found: list[Query] = []

        def walk(n: Node, negated: bool) -> None:
            if isinstance(n, Not):
                walk(n.child, not negated)
            elif isinstance(n, And | Or):
                for child in n.children:
                    walk(child, negated)
            elif isinstance(n, Term | Phrase) and not negated and field_type(n.field) == "text":
                found.append(self.text(n.value))
            elif isinstance(n, Prefix) and not negated and field_type(n.field) == "text":
                found.append(self.prefix(n.field, n.value))

        walk(node, False)
        if not found:
            return None
        return Query.boolean_query([(Occur.Should, q) for q in found])


def _with_markers(fragment: str, ranges: list[tuple[int, int]]) -> str:
    raw = fragment.encode("utf-8")
    out, pos = [], 0
    for start, end in sorted(ranges):
        if start < pos:
            continue
        out.append(raw[pos:start].decode("utf-8", "replace"))
        out.append("\x00" + raw[start:end].decode("utf-8", "replace") + "\x01")
        pos = end
    out.append(raw[pos:].decode("utf-8", "replace"))
    return "".join(out)


class TantivyLogStore(LogStore):
    """The embedded LogStore (DESIGN.md §3): tantivy, one index per UTC day."""

    def __init__(
        self,
        path: Path,
        *,
        writer_heap_bytes: int = 64_000_000,
        writer_threads: int = 1,
        max_open_writers: int = 3,
    ) -> None:
        """Store under ``path``; nothing is touched before :meth:`open`."""
        self._path = Path(path)
        self._schema = build_schema()
        self._analyzer = _message_analyzer()
        self._heap = writer_heap_bytes
        self._writer_threads = writer_threads
        self._max_writers = max(1, max_open_writers)
        self._indexes: dict[str, tantivy.Index] = {}
        self._writers: OrderedDict[str, tantivy.IndexWriter] = OrderedDict()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        # Per-day aggregations run side by side: tantivy releases the GIL, so a
        # stats request over a week uses every core instead of one.
        self._readers: ThreadPoolExecutor | None = None

    # -- plumbing ------------------------------------------------------------------

    async def _on_writer(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("TantivyLogStore is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _days(self) -> list[str]:
        try:
            names = [e.name for e in os.scandir(self._path) if e.is_dir() and _DAY_RE.fullmatch(e.name)]
        except FileNotFoundError:
            return []
        return sorted(n for n in names if (self._path / n / "meta.json").exists())

    def _days_for(self, filters: Filters) -> list[str]:
        out = []
        time_from = to_millis(filters.time_from) if filters.time_from is not None else None
        time_to = to_millis(filters.time_to) if filters.time_to is not None else None
        for day in self._days():
            start = _day_start(day)
            if time_to is not None and start >= time_to:
                continue
            if time_from is not None and start + timedelta(days=1) <= time_from:
                continue
            out.append(day)
        return out

    def _index(self, day: str, *, create: bool = False) -> tantivy.Index | None:
        with self._lock:
            index = self._indexes.get(day)
            if index is not None:
                return index
            directory = self._path / day
            if not (directory / "meta.json").exists():
                if not create:
                    return None
                directory.mkdir(parents=True, exist_ok=True)
            index = tantivy.Index(self._schema, path=str(directory))
            index.register_tokenizer(MESSAGE_ANALYZER, self._analyzer)
            self._indexes[day] = index
            return index

    def _searcher(self, day: str) -> Any | None:
        index = self._index(day)
        return index.searcher() if index is not None else None

    def _writer(self, day: str) -> tuple[tantivy.Index, tantivy.IndexWriter]:
        """Writer of a day index (writer thread only); least recently used ones are closed."""
        index = self._index(day, create=True)
        assert index is not None
        writer = self._writers.get(day)
        if writer is None:
            while len(self._writers) >= self._max_writers:
                _, old = self._writers.popitem(last=False)
                old.wait_merging_threads()
            writer = index.writer(heap_size=self._heap, num_threads=self._writer_threads)
            self._writers[day] = writer
        self._writers.move_to_end(day)
        return index, writer

    def _drop_day(self, day: str) -> None:
        writer = self._writers.pop(day, None)
        if writer is not None:
            writer.wait_merging_threads()
        with self._lock:
            self._indexes.pop(day, None)
        shutil.rmtree(self._path / day, ignore_errors=True)

    def _translator(self, searcher: Any) -> _Translator:
        return _Translator(self._schema, searcher, self._analyzer)

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self) -> None:
        """Create the directory and the writer thread."""
        self._path.mkdir(parents=True, exist_ok=True)
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tantivy-writer")
        if self._readers is None:
            self._readers = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="tantivy-read")

    async def close(self) -> None:
        """Finish merges, release writers and stop the writer thread."""
        if self._executor is None:
            return
        await self._on_writer(self._close_sync)
        self._executor.shutdown(wait=True)
        self._executor = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None

    def _close_sync(self) -> None:
        while self._writers:
            _, writer = self._writers.popitem(last=False)
            writer.wait_merging_threads()
        with self._lock:
            self._indexes.clear()

    # -- writes ----------------------------------------------------------------------------

    async def write(self, events: Sequence[LogEvent]) -> None:
        """Index a batch idempotently by id; returns once committed and searchable."""
        if events:
            await self._on_writer(self._write_sync, list(events))

    def _document(self, event: LogEvent) -> tantivy.Document:
        data = event.to_dict()
        fields: dict[str, Any] = {
            "_source": orjson.dumps(data),
            "id": event.id,
            "tb": tie_breaker(event.id),
            "timestamp": epoch_ms(event.timestamp),
            "message": event.message,
        }
        for name in KEYWORD_FIELDS:
            value = data.get(name)
            if value is not None and name != "id":
                fields[name] = value
        if event.status_code is not None:
            fields["status_code"] = event.status_code
        if event.response_time_ms is not None:
            fields["response_time_ms"] = float(event.response_time_ms)
        if event.attrs:
            fields["attrs_kv"] = [k + ATTR_SEP + v for k, v in event.attrs.items()]
        fields.update(kpi.derived_fields(event))
        return tantivy.Document.from_dict(fields, self._schema)

    def _write_sync(self, events: list[LogEvent]) -> None:
        by_day: dict[str, list[LogEvent]] = defaultdict(list)
        names: dict[int, str] = {}
        for event in events:
            day_number = epoch_ms(event.timestamp) // 86_400_000
            name = names.get(day_number)
            if name is None:
                name = names[day_number] = _day_of(event.timestamp)
            by_day[name].append(event)
        for day in sorted(by_day):
            index, writer = self._writer(day)
            try:
                for event in by_day[day]:
                    writer.delete_documents_by_term("id", event.id)
                    writer.add_document(self._document(event))
                writer.commit()
            except BaseException:
                writer.rollback()
                raise
            index.reload()

    async def delete_by_source(self, source: str) -> int:
        """Delete every event of ``source`` in every day; returns how many."""
        return await self._on_writer(self._delete_by_source_sync, source)

    def _delete_by_source_sync(self, source: str) -> int:
        deleted = 0
        for day in self._days():
            searcher = self._searcher(day)
            if searcher is None:
                continue
            count = searcher.search(Query.term_query(self._schema, "source", source), 1, count=True).count
            if count:
                index, writer = self._writer(day)
                writer.delete_documents_by_term("source", source)
                writer.commit()
                index.reload()
                deleted += count
        return deleted

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Drop whole days before ``cutoff``'s day, and the events before ``cutoff`` within it."""
        return await self._on_writer(self._delete_older_sync, cutoff)

    def _delete_older_sync(self, cutoff: datetime) -> int:
        cutoff_day = _day_of(cutoff)
        cutoff_ms = epoch_ms(cutoff)
        deleted = 0
        for day in self._days():
            if day < cutoff_day:
                searcher = self._searcher(day)
                deleted += searcher.num_docs if searcher is not None else 0
                self._drop_day(day)
            elif day == cutoff_day:
                searcher = self._searcher(day)
                if searcher is None:
                    continue
                older = Query.range_query(self._schema, "timestamp", FieldType.Integer, None, cutoff_ms, True, False)
                count = searcher.search(older, 1, count=True).count
                if count:
                    index, writer = self._writer(day)
                    writer.delete_documents_by_query(older)
                    writer.commit()
                    index.reload()
                    deleted += count
        return deleted

    # -- search ---------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        """One page of hits sorted by (sort field, tie-breaker, id), with an opaque cursor."""
        if request.sort not in ("timestamp", "response_time_ms", "status_code"):
            raise ValueError(f"cannot sort by {request.sort!r}")
        if request.order not in ("asc", "desc"):
            raise ValueError(f"invalid order {request.order!r}")
        if not 1 <= request.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        after: tuple[Any, int, str] | None = None
        if request.cursor is not None:
            key = decode_cursor(request.cursor, request.sort, request.order)
            if (
                len(key) != 3
                or not isinstance(key[1], int)
                or not isinstance(key[2], str)
                or not (key[0] is None or isinstance(key[0], int | float))
                or isinstance(key[0], bool)
            ):
                raise ValueError("invalid cursor")
            after = (key[0], key[1], key[2])
        return await asyncio.to_thread(self._search_sync, request, after)

    def _search_sync(self, request: SearchRequest, after: tuple[Any, int, str] | None) -> SearchResult:
        days = self._days_for(request.filters)
        want = request.limit + 1
        desc = request.order == "desc"
        field = request.sort
        total = 0
        candidates: list[_Hit] = []
        translators: dict[str, tuple[Any, _Translator, Query]] = {}
        for day in days:
            searcher = self._searcher(day)
            if searcher is None:
                continue
            tr = self._translator(searcher)
            query = tr.build(request.query, request.filters)
            translators[day] = (searcher, tr, query)
            total += searcher.search(query, 1, count=True).count
        ordered_days = sorted(translators, reverse=desc)
        for day in ordered_days:
            searcher, tr, query = translators[day]
            if field == "timestamp":
                if len(candidates) >= want:
                    break  # days hold disjoint, ordered time ranges
                if after is not None and after[0] is not None:
                    start = epoch_ms(_day_start(day))
                    end = start + 86_400_000
                    if (desc and start > after[0]) or (not desc and end <= after[0]):
                        continue
                candidates.extend(self._page_day(searcher, tr, query, day, field, desc, want - len(candidates), after))
            else:
                candidates.extend(self._page_day(searcher, tr, query, day, field, desc, want, after))
        if field != "timestamp":
            self._sort_hits(candidates, desc)
        page = candidates[: request.limit]
        more = len(candidates) > request.limit
        hits = self._render(page, request, translators)
        next_cursor = None
        if more and page:
            last = page[-1]
            next_cursor = encode_cursor(request.sort, request.order, [last.value, last.tb, hits[-1]["id"]])
        return SearchResult(total=total, hits=hits, next_cursor=next_cursor)

    def _render(
        self, page: list[_Hit], request: SearchRequest, translators: dict[str, tuple[Any, _Translator, Query]]
    ) -> list[dict[str, Any]]:
        generators: dict[str, Any] = {}
        out = []
        for hit in page:
            doc = hit.searcher.doc(hit.addr)
            data: dict[str, Any] = orjson.loads(doc["_source"][0])
            highlight: dict[str, list[str]] = {}
            if request.highlight and data.get("message"):
                if hit.day not in generators:
                    searcher, tr, _ = translators[hit.day]
                    hl_query = tr.highlight_query(request.query)
                    generator = None
                    if hl_query is not None:
                        generator = tantivy.SnippetGenerator.create(searcher, hl_query, self._schema, "message")
                        generator.set_max_num_chars(_HIGHLIGHT_CHARS)
                    generators[hit.day] = generator
                generator = generators[hit.day]
                if generator is not None:
                    snippet = generator.snippet_from_doc(tantivy.Document(message=data["message"]))
                    ranges = [(r.start, r.end) for r in snippet.highlighted()]
                    if ranges:
                        highlight["message"] = [_with_markers(snippet.fragment(), ranges)]
            data["highlight"] = highlight
            out.append(data)
        return out

    # Exact top-k helpers. Every result list is in (value, tb, id) order for the request's
    # direction; tantivy sorts by one fast field per search, so ties on the last returned
    # value are re-fetched with the next key.

    def _page_day(
        self,
        searcher: Any,
        tr: _Translator,
        query: Query,
        day: str,
        field: str,
        desc: bool,
        k: int,
        after: tuple[Any, int, str] | None,
    ) -> list[_Hit]:
        out: list[_Hit] = []
        has_missing = field != "timestamp"
        exists = Query.exists_query(field)

        def past(name: str, value: Any) -> Query:
            return tr.range(name, None, value, True, False) if desc else tr.range(name, value, None, False, True)

        if after is None:
            present = _and(query, exists) if has_missing else query
            out += self._top_by_field(searcher, tr, present, day, field, desc, k)
            if len(out) < k and has_missing:
                out += self._top_by_tb(searcher, tr, _and_not(query, exists), day, desc, k - len(out), None)
            return out
        value, tb, last_id = after
        if value is not None:
            same = _and(query, tr.term(field, value))
            out += self._after_id(searcher, _and(same, tr.term("tb", tb)), day, desc, k, value, tb, last_id)
            if len(out) < k:
                out += self._top_by_tb(searcher, tr, _and(same, past("tb", tb)), day, desc, k - len(out), value)
            if len(out) < k:
                out += self._top_by_field(searcher, tr, _and(query, past(field, value)), day, field, desc, k - len(out))
            if len(out) < k and has_missing:
                out += self._top_by_tb(searcher, tr, _and_not(query, exists), day, desc, k - len(out), None)
            return out
        missing = _and_not(query, exists)
        out += self._after_id(searcher, _and(missing, tr.term("tb", tb)), day, desc, k, None, tb, last_id)
        if len(out) < k:
            out += self._top_by_tb(searcher, tr, _and(missing, past("tb", tb)), day, desc, k - len(out), None)
        return out

    @staticmethod
    def _order(desc: bool) -> Order:
        return Order.Desc if desc else Order.Asc

    def _top_by_field(
        self, searcher: Any, tr: _Translator, query: Query, day: str, field: str, desc: bool, k: int
    ) -> list[_Hit]:
        if k <= 0:
            return []
        result = searcher.search(query, k, count=True, order_by_field=field, order=self._order(desc))
        pairs = result.hits
        if not pairs:
            return []
        tail: list[_Hit] = []
        if result.count > len(pairs):
            boundary = pairs[-1][0]
            pairs = [p for p in pairs if p[0] != boundary]
            same = _and(query, tr.term(field, boundary))
            tail = self._top_by_tb(searcher, tr, same, day, desc, k - len(pairs), boundary)
        tbs = searcher.fast_field_values("tb", [addr for _, addr in pairs]) if pairs else []
        hits = [_Hit(v, tb, addr, searcher, day) for (v, addr), tb in zip(pairs, tbs, strict=True)]
        self._sort_hits(hits, desc)
        return hits + tail

    def _top_by_tb(
        self, searcher: Any, tr: _Translator, query: Query, day: str, desc: bool, k: int, value: Any
    ) -> list[_Hit]:
        if k <= 0:
            return []
        result = searcher.search(query, k, count=True, order_by_field="tb", order=self._order(desc))
        pairs = result.hits
        tail: list[_Hit] = []
        if pairs and result.count > len(pairs):
            boundary = pairs[-1][0]
            pairs = [p for p in pairs if p[0] != boundary]
            same = _and(query, tr.term("tb", boundary))
            res = searcher.search(same, k - len(pairs), order_by_field="id", order=self._order(desc))
            tail = [_Hit(value, boundary, addr, searcher, day, key) for key, addr in res.hits]
        hits = [_Hit(value, tb, addr, searcher, day) for tb, addr in pairs]
        self._sort_hits(hits, desc)
        return hits + tail

    def _after_id(
        self, searcher: Any, query: Query, day: str, desc: bool, k: int, value: Any, tb: int, last_id: str
    ) -> list[_Hit]:
        """Hits of a (value, tb) group whose id is strictly after ``last_id`` (groups are tiny)."""
        limit = _GROUP_FETCH
        while True:
            result = searcher.search(query, limit, count=True, order_by_field="id", order=self._order(desc))
            if result.count <= limit:
                break
            limit = result.count
        out = [
            _Hit(value, tb, addr, searcher, day, key)
            for key, addr in result.hits
            if (key < last_id if desc else key > last_id)
        ]
        return out[:k]

    @staticmethod
    def _sort_hits(hits: list[_Hit], desc: bool) -> None:
        """Sort by (missing last, value, tb, id); ids are loaded only for (value, tb) ties."""

        def primary(h: _Hit) -> tuple[int, float, int]:
            if h.value is None:
                return (1, 0.0, -h.tb if desc else h.tb)
            return (0, -h.value if desc else h.value, -h.tb if desc else h.tb)

        seen: dict[tuple[int, float, int], int] = defaultdict(int)
        for h in hits:
            seen[primary(h)] += 1
        for h in hits:
            if h.id is None and seen[primary(h)] > 1:
                h.id = orjson.loads(h.searcher.doc(h.addr)["_source"][0])["id"]
        hits.sort(key=lambda h: h.id or "", reverse=desc)
        hits.sort(key=primary)

    # -- stats ----------------------------------------------------------------------------------

    async def stats(self, request: StatsRequest) -> dict[str, Any]:
        """The KPI document, merged exactly across day indices (see ``shared.store.kpi``)."""
        if request.interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        return await asyncio.to_thread(self._stats_sync, request)

    def _stats_sync(self, request: StatsRequest) -> dict[str, Any]:
        days = self._days_for(request.filters)
        span = None
        if days:
            start = request.filters.time_from or _day_start(days[0])
            end = request.filters.time_to or (_day_start(days[-1]) + timedelta(days=1))
            span = max(0, epoch_ms(end) - epoch_ms(start))
        interval = kpi.effective_interval(request.interval_ms, span)
        aggs = kpi.kpi_aggregations(interval, "tantivy")
        acc = kpi.KpiAccumulator(interval_ms=interval, top_n=request.top_n)
        users: set[str] = set()
        parts: list[tuple[Any, Query]] = []
        # Merged in day order, so the result does not depend on which thread finished first.
        for part in self._map_readers(lambda day: self._stats_day(day, request, aggs), days):
            if part is None:
                continue
            count, result, day_users, searcher, query = part
            acc.add(count, result)
            users |= day_users
            parts.append((searcher, query))
        slowest = acc.slowest_endpoints()
        hists: dict[str, Any] = {}
        if slowest:
            second = kpi.endpoint_percentile_aggregations(slowest)
            endpoints = Query.term_set_query(self._schema, "endpoint", slowest)
            results = self._map_readers(lambda part: part[0].aggregate(_and(part[1], endpoints), second), parts)
            hists = kpi.merge_endpoint_histograms(results)
        return acc.finish(len(users), hists)

    def _stats_day(
        self, day: str, request: StatsRequest, aggs: dict[str, Any]
    ) -> tuple[int, dict[str, Any], set[str], Any, Query] | None:
        """One day's share of a stats request: count, aggregations, distinct users."""
        searcher = self._searcher(day)
        if searcher is None:
            return None
        query = self._translator(searcher).build(request.query, request.filters)
        count = searcher.search(query, 1, count=True).count
        if not count:
            return None
        result = searcher.aggregate(query, aggs)
        # Exact distinct users: the union of every day's term set (tantivy's
        # cardinality aggregation is a HyperLogLog sketch, not mergeable across days).
        users = {t for t, n in searcher.terms_with_prefix("user_id", "", filter_query=query) if n > 0}
        return count, result, users, searcher, query

    def _map_readers(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``fn`` over ``items`` on the reader threads, results in the items' order."""
        if self._readers is None:
            raise RuntimeError("TantivyLogStore is not open")
        if len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._readers.map(fn, items))

    # -- lookups ------------------------------------------------------------------------------------

    async def get(self, event_id: str) -> LogEvent | None:
        """One event by id: the ULID's own day first, then every day newest first."""
        return await asyncio.to_thread(self._get_sync, event_id)

    def _get_sync(self, event_id: str) -> LogEvent | None:
        days = self._days()[::-1]
        hint = None
        if len(event_id) == 26 and event_id[0] in "01234567":
            try:
                ms = tie_breaker(event_id) >> 16
                hint = datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")
            except (OverflowError, OSError, ValueError):
                hint = None
        if hint in days:
            days.remove(hint)
            days.insert(0, hint)
        query = Query.term_query(self._schema, "id", event_id)
        for day in days:
            searcher = self._searcher(day)
            if searcher is None:
                continue
            hits = searcher.search(query, 1).hits
            if hits:
                return LogEvent.from_json(searcher.doc(hits[0][1])["_source"][0])
        return None

    async def distinct_values(self, field_name: str, *, prefix: str = "", limit: int = 20) -> list[str]:
        """Most frequent values of a keyword (or ``attrs.*``, ``status_code``) field starting with ``prefix``."""
        ftype = field_type(field_name)
        if ftype not in ("keyword", "integer"):
            raise ValueError(f"no distinct values for field {field_name!r}")
        return await asyncio.to_thread(self._distinct_sync, field_name, prefix, max(1, limit))

    def _distinct_sync(self, field_name: str, prefix: str, limit: int) -> list[str]:
        counts: dict[str, int] = defaultdict(int)
        for day in self._days():
            searcher = self._searcher(day)
            if searcher is None:
                continue
            if field_name == "status_code":
                result = searcher.aggregate(
                    Query.all_query(), {"v": {"terms": {"field": "status_code", "size": kpi.STATUS_CODES_SIZE}}}
                )
                for b in result["v"]["buckets"]:
                    key = str(int(b["key"]))
                    if key.startswith(prefix):
                        counts[key] += int(b["doc_count"])
                continue
            if field_name.startswith("attrs."):
                index_field, head = "attrs_kv", field_name[6:] + ATTR_SEP
            else:
                index_field, head = field_name, ""
            # The filter makes counts skip deleted documents (plain doc_freq would not).
            terms = searcher.terms_with_prefix(
                index_field, head + prefix, filter_query=Query.all_query(), limit=limit * 20
            )
            for term, count in terms:
                if count > 0:
                    counts[term[len(head) :]] += int(count)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return [value for value, _ in ranked[:limit]]

    async def health(self) -> CheckResult:
        """Healthy when the directory is usable; details: days, docs, bytes on disk."""
        return await asyncio.to_thread(self._health_sync)

    def _health_sync(self) -> CheckResult:
        started = time.perf_counter()
        if not self._path.is_dir() or not os.access(self._path, os.W_OK):
            return CheckResult("unhealthy", details={"error": f"{self._path} is not a writable directory"})
        days = self._days()
        docs = 0
        for day in days:
            searcher = self._searcher(day)
            docs += searcher.num_docs if searcher is not None else 0
        size = 0
        for root, _dirs, files in os.walk(self._path):
            for name in files:
                try:
                    size += os.path.getsize(os.path.join(root, name))
                except OSError:
                    pass
        return CheckResult(
            "healthy",
            response_time_ms=(time.perf_counter() - started) * 1000,
            details={"days": len(days), "docs": docs, "bytes": size, "open": self._executor is not None},
        )
