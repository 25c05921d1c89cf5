"""Streaming reverse proxy from the gateway to the internal services.

Bodies stream both ways (an upload is never held in memory), the caller's
credentials stay at the gateway, and the authenticated principal travels in
the internal headers with the shared token. Trace context is injected by the
httpx instrumentation on the shared client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Final

import httpx
from fastapi import Request
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from shared.errors import error_response
from shared.internal import INTERNAL_HEADERS, Principal
from shared.metrics import PROXY_UPSTREAM_ERRORS

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 hop-by-hop headers, plus what must not cross the boundary.
_HOP_BY_HOP: Final = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
_CREDENTIALS: Final = frozenset({"cookie", "authorization", "x-api-key", "x-csrf-token"})
_DROP_RESPONSE: Final = frozenset({"set-cookie", "server", "date"})


def upstream_timeout() -> httpx.Timeout:
    """Timeouts of the shared client: quick to connect, patient with large bodies."""
    return httpx.Timeout(connect=5.0, read=120.0, write=120.0, pool=10.0)


def create_upstream_client() -> httpx.AsyncClient:
    """The one pooled client the gateway uses for every upstream call."""
    return httpx.AsyncClient(
        timeout=upstream_timeout(),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30),
        follow_redirects=False,
    )


def forward_headers(request: Request, principal: Principal | None, token: str) -> dict[str, str]:
    """Request headers for the upstream: client's minus hop-by-hop, credentials and spoofed internals."""
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        lower = name.lower()
        if lower in _HOP_BY_HOP or lower in _CREDENTIALS or lower in INTERNAL_HEADERS:
            continue
        if lower.startswith("x-logwarden-"):
            continue
        headers[lower] = value
    client_ip = request.client.host if request.client else ""
    previous = request.headers.get("x-forwarded-for")
    headers["x-forwarded-for"] = f"{previous}, {client_ip}" if previous else client_ip
    headers["x-forwarded-proto"] = request.url.scheme
    if principal is not None:
        headers.update(principal.headers(token))
    else:
        headers["x-logwarden-internal-token"] = token
    return headers


def response_headers(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Upstream response headers safe to relay to the client."""
    return {k: v for k, v in items if k.lower() not in _HOP_BY_HOP and k.lower() not in _DROP_RESPONSE}


async def proxy_request(
    request: Request,
    *,
    client: httpx.AsyncClient,
    base_url: str,
    service: str,
    principal: Principal | None,
    token: str,
) -> Response:
    """Send ``request`` to ``base_url`` + same path and stream the answer back."""
    url = httpx.URL(base_url + request.url.path, query=request.url.query.encode())
    has_body = request.method not in {"GET", "HEAD", "DELETE", "OPTIONS"}
    upstream_request = client.build_request(
        request.method,
        url,
        headers=forward_headers(request, principal, token),
        content=request.stream() if has_body else None,
    )
    try:
        upstream = await client.send(upstream_request, stream=True)
    except httpx.TimeoutException:
        PROXY_UPSTREAM_ERRORS.labels(service, "timeout").inc()
        return error_response(504, f"the {service} service did not answer in time")
    except httpx.TransportError as exc:
        PROXY_UPSTREAM_ERRORS.labels(service, "unreachable").inc()
        log.warning("upstream %s unreachable: %s", service, type(exc).__name__)
        return error_response(502, f"the {service} service is unreachable")
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=response_headers(upstream.headers.multi_items()),
        background=BackgroundTask(upstream.aclose),
    )
