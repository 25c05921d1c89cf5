"""The gateway's table of proxied public routes: where each goes and what it needs.

This table is the single source for routing, authorisation and the merged
OpenAPI document; the authorisation-matrix test is generated from it, so a
route added here without an expectation there fails the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Permission = Literal["read", "ingest", "upload", "personal", "admin"]
"""What a caller must be allowed to do:

- ``read``: search and view (every role; keys with ``read``)
- ``ingest``: send events by machine (keys with ``ingest``; analyst and admin users)
- ``upload``: upload files (analyst, admin; keys with ``ingest``)
- ``personal``: the caller's own saved searches (analyst, admin)
- ``admin``: users, keys, deletes, settings (admin; keys with ``admin``)
"""


@dataclass(frozen=True, slots=True)
class ProxyRoute:
    """One public route served by an internal service."""

    path: str
    methods: tuple[str, ...]
    service: Literal["ingest", "query", "realtime"]
    permission: Permission
    streaming_upload: bool = False


PROXY_ROUTES: Final[tuple[ProxyRoute, ...]] = (
    # ingest
    ProxyRoute("/api/upload", ("POST",), "ingest", "upload", streaming_upload=True),
    ProxyRoute("/api/files", ("POST",), "ingest", "upload", streaming_upload=True),
    ProxyRoute("/api/files", ("GET",), "ingest", "read"),
    ProxyRoute("/api/files/{file_id}", ("GET",), "ingest", "read"),
    ProxyRoute("/api/files/{file_id}", ("DELETE",), "ingest", "admin"),
    ProxyRoute("/api/logs", ("POST",), "ingest", "ingest"),
    ProxyRoute("/api/demo-data", ("POST",), "ingest", "admin"),
    ProxyRoute("/es", ("GET", "HEAD"), "ingest", "ingest"),
    ProxyRoute("/es/", ("GET", "HEAD"), "ingest", "ingest"),
    ProxyRoute("/es/_bulk", ("POST", "PUT"), "ingest", "ingest"),
    ProxyRoute("/es/{index}/_bulk", ("POST", "PUT"), "ingest", "ingest"),
    ProxyRoute("/es/{es_path:path}", ("GET", "HEAD", "PUT", "POST"), "ingest", "ingest"),
    ProxyRoute("/v1/logs", ("POST",), "ingest", "ingest"),
    # query
    ProxyRoute("/api/search", ("GET",), "query", "read"),
    ProxyRoute("/api/logs", ("GET",), "query", "read"),
    ProxyRoute("/api/logs/{event_id}", ("GET",), "query", "read"),
    ProxyRoute("/api/stats", ("GET",), "query", "read"),
    ProxyRoute("/api/export", ("GET",), "query", "read"),
    ProxyRoute("/api/suggest/{field}", ("GET",), "query", "read"),
    ProxyRoute("/api/saved-searches", ("GET",), "query", "personal"),
    ProxyRoute("/api/saved-searches", ("POST",), "query", "personal"),
    ProxyRoute("/api/saved-searches/{search_id}", ("DELETE",), "query", "personal"),
    ProxyRoute("/api/search-history", ("GET", "DELETE"), "query", "read"),
    ProxyRoute("/api/popular-searches", ("GET",), "query", "read"),
    ProxyRoute("/api/settings/retention", ("GET",), "query", "read"),
    ProxyRoute("/api/settings/retention", ("PUT",), "query", "admin"),
)


def routes_for(service: str) -> list[ProxyRoute]:
    """The public routes one service serves."""
    return [r for r in PROXY_ROUTES if r.service == service]
