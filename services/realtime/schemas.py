"""Payloads of the live-tail socket protocol (validated client input, typed server output)."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shared.models import LEVELS, Level

MAX_SERVICES = 100
MAX_QUERY_LENGTH = 4096
MAX_ID_LENGTH = 64


class SubscribeRequest(BaseModel):
    """What a client sends with ``subscribe``; empty lists mean "any"."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    levels: list[Level] = Field(default_factory=list, max_length=len(LEVELS))
    services: list[str] = Field(default_factory=list, max_length=MAX_SERVICES)
    q: str = Field("", max_length=MAX_QUERY_LENGTH)
    last_id: str | None = Field(None, max_length=MAX_ID_LENGTH)

    @field_validator("levels", mode="before")
    @classmethod
    def _upper_levels(cls, value: Any) -> Any:
        # The UI shows levels in capitals but a hand-written client may not.
        if isinstance(value, list):
            return [v.upper() if isinstance(v, str) else v for v in value]
        return value

    @field_validator("services")
    @classmethod
    def _no_blank_services(cls, value: list[str]) -> list[str]:
        return [s for s in (v.strip() for v in value) if s and len(s) <= 256]

    @field_validator("q", mode="before")
    @classmethod
    def _null_query(cls, value: Any) -> Any:
        return "" if value is None else value

    @field_validator("last_id", mode="before")
    @classmethod
    def _blank_last_id(cls, value: Any) -> Any:
        return value or None


class SubscribeError(TypedDict):
    """``subscribe_error`` payload: ``position`` is the 0-based offset into ``q`` (None when not a query error)."""

    message: str
    position: int | None


class SubscribeAck(TypedDict):
    """Acknowledgement returned to the ``subscribe`` callback on success."""

    ok: bool
    backfill: int
    resumed: bool


def validation_message(exc: ValidationError) -> str:
    """One readable line for the first problem of an invalid ``subscribe`` payload."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "payload"
    return f"{where}: {first['msg']}"
