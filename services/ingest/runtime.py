"""Everything the ingest service opens in its lifespan, in one object on ``app.state.ingest``."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis

from services.ingest.inputs.upload import UploadManager
from services.ingest.publish import BacklogGate, Publisher
from shared.settings import Settings
from shared.store.base import MetaStore


@dataclass
class IngestRuntime:
    """Clients, the publisher, the backlog gate and the upload manager of one ingest process."""

    settings: Settings
    redis: Redis
    meta: MetaStore
    publisher: Publisher
    gate: BacklogGate
    uploads: UploadManager
    http: httpx.AsyncClient
    # Index templates, ILM policies... that shippers PUT at start: remembered so their
    # HEAD/GET checks succeed afterwards, as with a real cluster (per process).
    es_resources: set[tuple[str, str]] = field(default_factory=set)
    listeners: dict[str, int] = field(default_factory=dict)
