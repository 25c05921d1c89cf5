"""The LogEvent of DESIGN.md §4 and its (de)serialisation.

Events travel between services as orjson bytes; ``to_dict``/``from_dict`` use the
wire shape (timestamp as RFC 3339 with ``Z`` and millisecond precision).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from ulid import ULID

Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LEVELS: Final[tuple[str, ...]] = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
ERROR_LEVELS: Final[frozenset[str]] = frozenset({"ERROR", "CRITICAL"})

# Field types as every store and the query language see them.
KEYWORD_FIELDS: Final[tuple[str, ...]] = (
    "id",
    "level",
    "service",
    "server",
    "endpoint",
    "method",
    "user_id",
    "tenant_id",
    "client_ip",
    "trace_id",
    "span_id",
    "source",
)
INTEGER_FIELDS: Final[tuple[str, ...]] = ("status_code",)
FLOAT_FIELDS: Final[tuple[str, ...]] = ("response_time_ms",)
DATE_FIELDS: Final[tuple[str, ...]] = ("timestamp",)
TEXT_FIELDS: Final[tuple[str, ...]] = ("message",)
ATTRS_PREFIX: Final[str] = "attrs."
ALL_FIELDS: Final[tuple[str, ...]] = (
    *KEYWORD_FIELDS,
    *INTEGER_FIELDS,
    *FLOAT_FIELDS,
    *DATE_FIELDS,
    *TEXT_FIELDS,
)

_ORJSON_OPTS: Final[int] = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def new_event_id() -> str:
    """A fresh ULID string (sortable by creation time)."""
    return str(ULID())


def utc_now() -> datetime:
    """Current UTC time truncated to milliseconds."""
    return to_millis(datetime.now(UTC))


def to_millis(value: datetime) -> datetime:
    """Return ``value`` in UTC with sub-millisecond digits dropped (naive is taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def epoch_ms(value: datetime) -> int:
    """Milliseconds since the Unix epoch."""
    return int(to_millis(value).timestamp() * 1000)


def from_epoch_ms(value: int) -> datetime:
    """UTC datetime for epoch milliseconds."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


class LogEvent(BaseModel):
    """One normalised log event, as indexed and returned by the API."""

    model_config = ConfigDict(extra="forbid", frozen=False, str_strip_whitespace=False)

    id: str = Field(default_factory=new_event_id, min_length=1, max_length=64)
    timestamp: datetime = Field(default_factory=utc_now)
    level: Level = "INFO"
    service: str | None = None
    server: str | None = None
    endpoint: str | None = None
    method: str | None = None
    status_code: int | None = Field(None, ge=0, le=999)
    response_time_ms: float | None = Field(None, ge=0)
    user_id: str | None = None
    tenant_id: str | None = None
    client_ip: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    message: str = ""
    source: str = "http"
    attrs: dict[str, str] = Field(default_factory=dict)

    @field_validator("timestamp")
    @classmethod
    def _timestamp_utc_ms(cls, value: datetime) -> datetime:
        return to_millis(value)

    @property
    def is_error(self) -> bool:
        """ERROR and CRITICAL events are errors (DESIGN.md §4)."""
        return self.level in ERROR_LEVELS

    def to_dict(self) -> dict[str, Any]:
        """Wire/JSON shape: None fields omitted, timestamp as ``...Z`` string."""
        data = self.model_dump(exclude_none=True)
        data["timestamp"] = format_timestamp(self.timestamp)
        return data

    def to_json(self) -> bytes:
        """orjson bytes of :meth:`to_dict`."""
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LogEvent:
        """Build from the wire shape (validates)."""
        return cls.model_validate(data)

    @classmethod
    def from_json(cls, raw: bytes | str) -> LogEvent:
        """Parse orjson bytes produced by :meth:`to_json`."""
        return cls.model_validate(orjson.loads(raw))


def format_timestamp(value: datetime) -> str:
    """RFC 3339 UTC with millisecond precision and a ``Z`` suffix."""
    value = to_millis(value)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def dumps_events(events: Iterable[LogEvent]) -> bytes:
    """Serialise a batch of events as one JSON array (one stream entry)."""
    return orjson.dumps([e.to_dict() for e in events], option=_ORJSON_OPTS)


def loads_events(raw: bytes | str) -> list[LogEvent]:
    """Parse a batch produced by :func:`dumps_events`."""
    return [LogEvent.model_validate(item) for item in orjson.loads(raw)]


def field_type(name: str) -> Literal["keyword", "integer", "float", "date", "text"] | None:
    """Type of a queryable field, ``attrs.*`` being keywords; None for unknown fields."""
    if name.startswith(ATTRS_PREFIX) and len(name) > len(ATTRS_PREFIX):
        return "keyword"
    if name in KEYWORD_FIELDS:
        return "keyword"
    if name in INTEGER_FIELDS:
        return "integer"
    if name in FLOAT_FIELDS:
        return "float"
    if name in DATE_FIELDS:
        return "date"
    if name in TEXT_FIELDS:
        return "text"
    return None
