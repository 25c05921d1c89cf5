"""Scale-out LogStore: Elasticsearch 8/9, daily indices ``<prefix>-YYYY.MM.dd`` from a template.

* Writes are bulk ``index`` operations with ``_id`` = event id (a replay overwrites,
  never duplicates) and ``refresh=wait_for``, so ``write`` returns once the batch is
  searchable. Items rejected with 429 are retried with exponential backoff; any other
  item error raises :class:`BulkWriteError` naming the failed ids (the indexer
  dead-letters them).
* Search sorts on ``[field, id]`` with ``search_after`` (no point in time, no offsets)
  and ``track_total_hits``; all query translation is in ``shared.store.es_dsl``.
* Stats run the aggregation requests of ``shared.store.kpi`` (the same as tantivy's)
  plus ``cardinality`` for distinct users (exact below 40 000, HyperLogLog++ above).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from elasticsearch import AsyncElasticsearch, NotFoundError

from shared.health import CheckResult, Status
from shared.models import LogEvent, epoch_ms, field_type
from shared.settings import Settings
from shared.store import es_dsl, kpi
from shared.store.base import LogStore, SearchRequest, SearchResult, StatsRequest
from shared.store.cursor import decode_cursor, encode_cursor

MAX_LIMIT: Final[int] = 1000
BULK_RETRIES: Final[int] = 6
BULK_BACKOFF_S: Final[float] = 0.25
ACTIVE_USERS_PRECISION: Final[int] = 40_000
_DAY_RE: Final = re.compile(r"(\d{4})\.(\d{2})\.(\d{2})$")


class BulkWriteError(Exception):
    """Some events of a batch were rejected; ``failures`` maps event id -> reason."""

    def __init__(self, failures: dict[str, str]) -> None:
        self.failures = failures
        self.failed_ids = list(failures)
        shown = ", ".join(f"{i}: {r}" for i, r in list(failures.items())[:5])
        more = f" (+{len(failures) - 5} more)" if len(failures) > 5 else ""
        super().__init__(f"{len(failures)} event(s) rejected by Elasticsearch: {shown}{more}")


class ElasticsearchLogStore(LogStore):
    """The Elasticsearch LogStore (DESIGN.md §3)."""

    def __init__(self, settings: Settings) -> None:
        """Configure from settings; the client is created by :meth:`open`."""
        if not settings.elasticsearch_url:
            raise ValueError("ElasticsearchLogStore needs LOGWARDEN_ELASTICSEARCH_URL")
        self._settings = settings
        self._prefix = settings.elasticsearch_index_prefix
        self._pattern = es_dsl.index_pattern(self._prefix)
        self._client: AsyncElasticsearch | None = None

    @property
    def client(self) -> AsyncElasticsearch:
        """The open client (RuntimeError before :meth:`open`)."""
        if self._client is None:
            raise RuntimeError("ElasticsearchLogStore is not open")
        return self._client

    async def open(self) -> None:
        """Connect and install (or update) the index template."""
        s = self._settings
        kwargs: dict[str, Any] = {"request_timeout": 30, "retry_on_timeout": True, "max_retries": 3}
        if s.elasticsearch_api_key is not None:
            kwargs["api_key"] = s.elasticsearch_api_key.get_secret_value()
        elif s.elasticsearch_username and s.elasticsearch_password is not None:
            kwargs["basic_auth"] = (s.elasticsearch_username, s.elasticsearch_password.get_secret_value())
        if s.elasticsearch_ca_certs is not None:
            kwargs["ca_certs"] = str(s.elasticsearch_ca_certs)
        self._client = AsyncElasticsearch(s.elasticsearch_url, **kwargs)
        template = es_dsl.index_template(self._prefix)
        await self._client.indices.put_index_template(
            name=self._prefix,
            index_patterns=template["index_patterns"],
            priority=template["priority"],
            template=template["template"],
        )

    async def close(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def drop_everything(self) -> None:
        """Delete every index of this prefix and the template (tests and teardown only)."""
        # Elasticsearch 8 refuses wildcard deletes (action.destructive_requires_name): name each index.
        existing = await self.client.indices.get(index=self._pattern, ignore_unavailable=True, allow_no_indices=True)
        if existing:
            await self.client.indices.delete(index=",".join(existing.keys()), ignore_unavailable=True)
        try:
            await self.client.indices.delete_index_template(name=self._prefix)
        except NotFoundError:
            pass

    # -- writes -----------------------------------------------------------------------------

    async def write(self, events: Sequence[LogEvent]) -> None:
        """Bulk-index idempotently by id; 429s retried with backoff, other item errors raised."""
        pending = {e.id: e for e in events}  # a repeated id within a batch: the last one wins
        failures: dict[str, str] = {}
        delay = BULK_BACKOFF_S
        for attempt in range(BULK_RETRIES):
            operations: list[dict[str, Any]] = []
            for event in pending.values():
                operations.append(
                    {"index": {"_index": es_dsl.index_name(event.timestamp, self._prefix), "_id": event.id}}
                )
                operations.append(es_dsl.es_document(event))
            response = await self.client.bulk(operations=operations, refresh="wait_for")
            retry: dict[str, LogEvent] = {}
            if response.get("errors"):
                for item in response["items"]:
                    result = next(iter(item.values()))
                    event_id = str(result.get("_id"))
                    status = int(result.get("status", 500))
                    if status < 300:
                        continue
                    if status == 429 and attempt < BULK_RETRIES - 1:
                        retry[event_id] = pending[event_id]
                    else:
                        error = result.get("error") or {}
                        failures[event_id] = f"{status} {error.get('type', '')}: {error.get('reason', '')}".strip()
            if not retry:
                break
            pending = retry
            await asyncio.sleep(delay)
            delay *= 2
        if failures:
            raise BulkWriteError(failures)

    async def delete_by_source(self, source: str) -> int:
        """Delete-by-query on ``source``; returns how many went."""
        response = await self.client.delete_by_query(
            index=self._pattern,
            query={"term": {"source": source}},
            refresh=True,
            conflicts="proceed",
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        return int(response.get("deleted", 0))

    async def delete_older_than(self, cutoff: datetime) -> int:
        """Delete whole daily indices before the cutoff's day, and older events within that day."""
        cutoff = cutoff.astimezone(UTC)
        cutoff_index = es_dsl.index_name(cutoff, self._prefix)
        names = await self._index_names()
        deleted = 0
        old = [n for n in names if n < cutoff_index and _DAY_RE.search(n)]
        if old:
            for name in old:
                count = await self.client.count(index=name)
                deleted += int(count["count"])
            await self.client.indices.delete(index=",".join(old), ignore_unavailable=True)
        if cutoff_index in names:
            response = await self.client.delete_by_query(
                index=cutoff_index,
                query={"range": {"timestamp": {"lt": epoch_ms(cutoff), "format": "epoch_millis"}}},
                refresh=True,
                conflicts="proceed",
            )
            deleted += int(response.get("deleted", 0))
        return deleted

    async def _index_names(self) -> list[str]:
        response = await self.client.indices.get(index=self._pattern, allow_no_indices=True, ignore_unavailable=True)
        return sorted(response.keys())

    # -- search -------------------------------------------------------------------------------

    async def search(self, request: SearchRequest) -> SearchResult:
        """One page sorted by ``[field, id]``; the cursor carries the last hit's sort values."""
        if not 1 <= request.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        search_after = None
        if request.cursor is not None:
            key = decode_cursor(request.cursor, request.sort, request.order)
            if len(key) != 2 or not isinstance(key[1], str) or not isinstance(key[0], int | float):
                raise ValueError("invalid cursor")
            search_after = key
        body = es_dsl.search_body(
            request.query,
            request.filters,
            request.sort,
            request.order,
            request.limit + 1,
            search_after=search_after,
            highlight=request.highlight,
        )
        source = body.pop("_source")  # the client spells it ``source``
        response = await self.client.search(
            index=self._pattern, allow_no_indices=True, ignore_unavailable=True, source=source, **body
        )
        raw_hits = response["hits"]["hits"]
        hits: list[dict[str, Any]] = []
        for hit in raw_hits[: request.limit]:
            data = dict(hit["_source"])
            fragments = (hit.get("highlight") or {}).get("message")
            data["highlight"] = {"message": list(fragments)} if fragments and request.highlight else {}
            hits.append(data)
        next_cursor = None
        if len(raw_hits) > request.limit:
            next_cursor = encode_cursor(request.sort, request.order, list(raw_hits[request.limit - 1]["sort"]))
        return SearchResult(total=int(response["hits"]["total"]["value"]), hits=hits, next_cursor=next_cursor)

    async def stats(self, request: StatsRequest) -> dict[str, Any]:
        """The KPI document from the shared aggregation requests."""
        if request.interval_ms <= 0:
            raise ValueError("interval_ms must be positive")
        query = es_dsl.build_query(request.query, request.filters)
        span = await self._span_ms(query, request)
        interval = kpi.effective_interval(request.interval_ms, span)
        aggs = kpi.kpi_aggregations(interval, "elasticsearch")
        aggs["active_users"] = {"cardinality": {"field": "user_id", "precision_threshold": ACTIVE_USERS_PRECISION}}
        response = await self.client.search(
            index=self._pattern,
            query=query,
            size=0,
            track_total_hits=True,
            aggs=aggs,
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        results = response.get("aggregations") or {}
        acc = kpi.KpiAccumulator(interval_ms=interval, top_n=request.top_n)
        acc.add(int(response["hits"]["total"]["value"]), results)
        slowest = acc.slowest_endpoints()
        hists: dict[str, Any] = {}
        if slowest:
            second = await self.client.search(
                index=self._pattern,
                query={"bool": {"must": [query], "filter": [{"terms": {"endpoint": slowest}}]}},
                size=0,
                aggs=kpi.endpoint_percentile_aggregations(slowest),
                allow_no_indices=True,
                ignore_unavailable=True,
            )
            hists = kpi.merge_endpoint_histograms([second.get("aggregations") or {}])
        users = int(((results.get("active_users") or {}).get("value")) or 0)
        return acc.finish(users, hists)

    async def _span_ms(self, query: dict[str, Any], request: StatsRequest) -> int | None:
        f = request.filters
        if f.time_from is not None and f.time_to is not None:
            return epoch_ms(f.time_to) - epoch_ms(f.time_from)
        response = await self.client.search(
            index=self._pattern,
            query=query,
            size=0,
            aggs={"lo": {"min": {"field": "timestamp"}}, "hi": {"max": {"field": "timestamp"}}},
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        aggs = response.get("aggregations") or {}
        lo = (aggs.get("lo") or {}).get("value")
        hi = (aggs.get("hi") or {}).get("value")
        if lo is None or hi is None:
            return None
        start = epoch_ms(f.time_from) if f.time_from is not None else int(lo)
        end = epoch_ms(f.time_to) if f.time_to is not None else int(hi) + 1
        return max(0, end - start)

    async def get(self, event_id: str) -> LogEvent | None:
        """One event by id across every daily index."""
        response = await self.client.search(
            index=self._pattern,
            query={"term": {"id": event_id}},
            size=1,
            source_excludes=list(kpi.INTERNAL_FIELDS),
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        hits = response["hits"]["hits"]
        return LogEvent.from_dict(hits[0]["_source"]) if hits else None

    async def distinct_values(self, field_name: str, *, prefix: str = "", limit: int = 20) -> list[str]:
        """Terms aggregation on the field (prefix applied as a query), most frequent first."""
        ftype = field_type(field_name)
        if ftype not in ("keyword", "integer"):
            raise ValueError(f"no distinct values for field {field_name!r}")
        limit = max(1, limit)
        if ftype == "integer":
            query: dict[str, Any] = {"exists": {"field": field_name}}
            size = kpi.STATUS_CODES_SIZE
        else:
            query = {"prefix": {field_name: {"value": prefix}}} if prefix else {"exists": {"field": field_name}}
            size = limit
        response = await self.client.search(
            index=self._pattern,
            query=query,
            size=0,
            aggs={"v": {"terms": {"field": field_name, "size": size, "order": [{"_count": "desc"}, {"_key": "asc"}]}}},
            allow_no_indices=True,
            ignore_unavailable=True,
        )
        buckets = ((response.get("aggregations") or {}).get("v") or {}).get("buckets") or []
        values = [str(b["key"]) for b in buckets]
        if ftype == "integer":
            values = [v for v in values if v.startswith(prefix)]
        return values[:limit]

    async def health(self) -> CheckResult:
        """Cluster health: green = healthy, yellow = degraded, red = unhealthy."""
        started = time.perf_counter()
        response = await self.client.cluster.health()
        status = str(response.get("status", "red"))
        mapped: Status = "healthy" if status == "green" else "degraded" if status == "yellow" else "unhealthy"
        return CheckResult(
            mapped,
            response_time_ms=(time.perf_counter() - started) * 1000,
            details={
                "cluster_status": status,
                "nodes": response.get("number_of_nodes"),
                "index_pattern": self._pattern,
            },
        )
