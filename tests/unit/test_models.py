"""LogEvent: validation, UTC millisecond timestamps, wire round-trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from pydantic import ValidationError
from ulid import ULID

from shared.models import LogEvent, dumps_events, field_type, format_timestamp, loads_events


def test_defaults_give_a_ulid_and_utc_now() -> None:
    event = LogEvent(message="hello")
    ULID.from_str(event.id)
    assert event.timestamp.tzinfo is UTC
    assert abs(datetime.now(UTC) - event.timestamp) < timedelta(seconds=5)


def test_timestamps_are_utc_with_millisecond_precision() -> None:
    local = datetime(2026, 1, 2, 3, 4, 5, 678_901, tzinfo=timezone(timedelta(hours=2)))
    event = LogEvent(timestamp=local)
    assert event.timestamp == datetime(2026, 1, 2, 1, 4, 5, 678_000, tzinfo=UTC)
    assert format_timestamp(event.timestamp) == "2026-01-02T01:04:05.678Z"


def test_naive_timestamp_is_utc() -> None:
    assert LogEvent(timestamp=datetime(2026, 1, 1, 12)).timestamp.tzinfo is UTC


def test_level_must_be_canonical() -> None:
    with pytest.raises(ValidationError):
        LogEvent(level="warn")  # type: ignore[arg-type]


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        LogEvent.model_validate({"message": "x", "colour": "red"})


def test_wire_round_trip_keeps_every_field() -> None:
    event = LogEvent(
        level="ERROR",
        service="billing",
        server="server-01",
        endpoint="/api/billing",
        method="POST",
        status_code=503,
        response_time_ms=1234.5,
        user_id="user_1",
        tenant_id="tenant_9",
        client_ip="10.0.0.1",
        trace_id="a" * 32,
        span_id="b" * 16,
        message="line1\nline2\u2028x",
        source="upload:01H",
        attrs={"sql.query": "SELECT 1"},
    )
    wire = event.to_dict()
    assert wire["timestamp"].endswith("Z")
    assert "user_agent" not in wire
    assert LogEvent.from_json(event.to_json()) == event
    batch = loads_events(dumps_events([event, LogEvent(message="b")]))
    assert batch[0] == event and batch[1].message == "b"
    assert orjson.loads(dumps_events([event]))[0]["status_code"] == 503


def test_is_error_and_field_types() -> None:
    assert LogEvent(level="CRITICAL").is_error and not LogEvent(level="WARNING").is_error
    assert field_type("status_code") == "integer"
    assert field_type("attrs.region") == "keyword"
    assert field_type("message") == "text"
    assert field_type("attrs.") is None and field_type("nope") is None
