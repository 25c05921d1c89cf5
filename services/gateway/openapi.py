"""The merged OpenAPI document: the gateway's own routes plus the services' public ones."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

import httpx
from fastapi import FastAPI

from services.gateway.routes import PROXY_ROUTES
from shared.internal import TOKEN_HEADER

log = logging.getLogger(__name__)
_PARAM = re.compile(r"\{[^}]+\}")
_CACHE_SECONDS = 30.0


def _shape(path: str) -> str:
    return _PARAM.sub("{}", path)


_PUBLIC = {(_shape(r.path), m.lower()) for r in PROXY_ROUTES for m in r.methods}


def is_public_operation(path: str, method: str) -> bool:
    """Whether a service's operation is reachable through the gateway."""
    return (_shape(path), method.lower()) in _PUBLIC


def merge_openapi(own: dict[str, Any], upstream_specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge the services' public paths and schemas into the gateway's document."""
    merged = {**own, "paths": dict(own.get("paths", {}))}
    components = merged.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    tags = {t["name"]: t for t in merged.get("tags", [])}
    for service, spec in upstream_specs.items():
        for path, operations in spec.get("paths", {}).items():
            public = {m: op for m, op in operations.items() if is_public_operation(path, m)}
            for op in public.values():
                op.setdefault("tags", [service])
            if public:
                merged["paths"].setdefault(path, {}).update(public)
        for name, schema in spec.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(name, schema)
        tags.setdefault(service, {"name": service, "description": f"Served by the {service} service"})
    merged["tags"] = list(tags.values())
    components.setdefault("securitySchemes", {}).update(
        {
            "session": {"type": "apiKey", "in": "cookie", "name": "logwarden_session"},
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "basic": {"type": "http", "scheme": "basic"},
        }
    )
    merged["security"] = [{"session": []}, {"bearer": []}, {"apiKey": []}, {"basic": []}]
    return merged


class OpenApiMerger:
    """Fetches the services' documents (cached briefly) and merges them."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient, service_urls: dict[str, str], token: str) -> None:
        self._app = app
        self._client = client
        self._urls = service_urls
        self._token = token
        self._cached: tuple[float, dict[str, Any]] | None = None
        self._lock = asyncio.Lock()

    async def _fetch(self, service: str, url: str) -> dict[str, Any]:
        try:
            response = await self._client.get(f"{url}/openapi.json", headers={TOKEN_HEADER: self._token}, timeout=5)
            response.raise_for_status()
            spec: dict[str, Any] = response.json()
            return spec
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("could not fetch the %s OpenAPI document: %s", service, type(exc).__name__)
            return {}

    async def document(self) -> dict[str, Any]:
        """The merged document (complete once every service answered)."""
        async with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < _CACHE_SECONDS:
                return self._cached[1]
            names = list(self._urls)
            specs = await asyncio.gather(*(self._fetch(n, self._urls[n]) for n in names))
            merged = merge_openapi(self._app.openapi(), dict(zip(names, specs, strict=True)))
            if all(specs):
                self._cached = (time.monotonic(), merged)
            return merged
