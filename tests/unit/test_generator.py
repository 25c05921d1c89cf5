"""The synthetic traffic generator: counts, determinism, distributions, consistency, round-trips."""

from __future__ import annotations

import argparse
import io
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from services.ingest.parsing import ParsedRecord, ParseLimits, iter_records
from shared.generator import (
    ENDPOINTS,
    SERVERS,
    add_generate_arguments,
    generate_events,
    run_generate,
    write_events,
)
from shared.models import LogEvent

END = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def sample() -> list[LogEvent]:
    return list(generate_events(count=20_000, days=7, seed=42, end=END))


@pytest.mark.parametrize("count", [0, 1, 7, 1234])
def test_exact_count(count: int) -> None:
    assert sum(1 for _ in generate_events(count=count, seed=1, end=END)) == count


def test_same_seed_same_output_ids_included() -> None:
    a = [e.to_dict() for e in generate_events(count=500, seed=7, end=END)]
    b = [e.to_dict() for e in generate_events(count=500, seed=7, end=END)]
    c = [e.to_dict() for e in generate_events(count=500, seed=8, end=END)]
    assert a == b
    assert a != c
    assert len({e["id"] for e in a}) == 500


def test_timestamps_are_utc_sorted_and_in_range(sample: list[LogEvent]) -> None:
    start = END - timedelta(days=7)
    stamps = [e.timestamp for e in sample]
    assert stamps == sorted(stamps)
    assert all(s.utcoffset() == timedelta(0) for s in stamps)
    assert all(start <= s < END for s in stamps)
    assert all(s.microsecond % 1000 == 0 for s in stamps)
    # ids sort with time: the ULID time part is the event's own timestamp
    assert [e.id[:10] for e in sample] == sorted(e.id[:10] for e in sample)


def test_level_is_consistent_with_status(sample: list[LogEvent]) -> None:
    for event in sample:
        assert event.status_code is not None
        if event.status_code >= 500:
            assert event.level in {"ERROR", "CRITICAL"}, event
        elif event.status_code >= 400:
            assert event.level == "WARNING", event
        else:
            assert event.level in {"INFO", "DEBUG"}, event
    assert Counter(e.level for e in sample)["DEBUG"] > 0


def test_distributions_are_roughly_right(sample: list[LogEvent]) -> None:
    n = len(sample)

    def share(predicate: Callable[[LogEvent], bool]) -> float:
        return sum(1 for e in sample if predicate(e)) / n

    statuses = Counter(e.status_code for e in sample)
    for code, weight in {200: 70, 201: 5, 400: 10, 401: 5, 404: 5, 500: 3, 503: 2}.items():
        assert abs(statuses[code] / n - weight / 100) < 0.015, (code, statuses[code] / n)
    methods = Counter(e.method for e in sample)
    for method, weight in {"GET": 60, "POST": 25, "PUT": 10, "DELETE": 5}.items():
        assert abs(methods[method] / n - weight / 100) < 0.015, method
    assert 0.72 <= share(lambda e: 9 <= e.timestamp.hour < 17) <= 0.78
    assert 0.04 <= share(lambda e: (e.response_time_ms or 0) >= 1000) <= 0.15
    assert 0.27 <= share(lambda e: "sql_query" in e.attrs) <= 0.33
    assert {e.endpoint for e in sample} == set(ENDPOINTS)
    assert {e.server for e in sample} == set(SERVERS)
    assert {e.service for e in sample} == {service for service, _ in ENDPOINTS.values()}
    assert len({e.tenant_id for e in sample}) == 50
    assert 400 < len({e.user_id for e in sample}) <= 500
    for event in sample:
        if "query_duration_ms" in event.attrs:
            assert float(event.attrs["query_duration_ms"]) <= (event.response_time_ms or 0)


def test_server_errors_come_in_bursts(sample: list[LogEvent]) -> None:
    runs, current = [], 0
    for event in sample:
        if (event.status_code or 0) >= 500:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    assert max(runs) >= 5
    assert sum(r for r in runs if r >= 5) >= 0.2 * sum(runs)


@pytest.mark.parametrize("fmt", ["csv", "ndjson", "json"])
def test_output_round_trips_through_the_parsers(fmt: str) -> None:
    original = list(generate_events(count=300, days=2, seed=3, end=END))
    buffer = io.BytesIO()
    assert write_events(original, buffer, fmt) == 300  # type: ignore[arg-type]
    buffer.seek(0)
    reader = iter_records(buffer, fmt=None, limits=ParseLimits(), source="upload:test")
    items = list(reader)
    assert reader.format == fmt
    assert all(isinstance(i, ParsedRecord) for i in items)
    parsed = [i.event for i in items if isinstance(i, ParsedRecord)]
    # ids and source are assigned by ingest; everything else must come back identical.
    assert [e.model_dump(exclude={"id", "source"}) for e in parsed] == [
        e.model_dump(exclude={"id", "source"}) for e in original
    ]


def test_cli_writes_a_file(tmp_path: object) -> None:
    from pathlib import Path

    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    out = Path(str(tmp_path)) / "logs.ndjson"
    args = parser.parse_args(
        ["--count", "25", "--days", "0.5", "--format", "ndjson", "--seed", "1", "--output", str(out)]
    )
    assert run_generate(args) == 0
    assert len(out.read_bytes().splitlines()) == 25
    bad = parser.parse_args(["--count", "-1"])
    assert run_generate(bad) == 2


def test_cli_send_reports_an_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    # Port 9 on localhost (discard) is closed in test environments: the connection is refused.
    args = parser.parse_args(["--count", "5", "--send", "http://127.0.0.1:9/api/logs", "--api-key", "k"])
    assert run_generate(args) == 1
    assert "sending failed" in capsys.readouterr().err
