"""The ingest parsing core: detection, line formats, normalisation, streaming and limits."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest

from services.ingest.parsing import (
    NotALogError,
    ParsedRecord,
    ParseLimits,
    RecordError,
    RejectedRecord,
    detect_format,
    iter_records,
    normalise,
    normalise_counted,
    normalise_level,
    normalise_otel_severity,
    parse_line,
    parse_payload,
    parse_timestamp,
)

LIMITS = ParseLimits()
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def read(data: bytes, fmt: str | None = None, limits: ParseLimits = LIMITS) -> list[ParsedRecord | RejectedRecord]:
    return list(iter_records(io.BytesIO(data), fmt=fmt, limits=limits, now=NOW))


def events(data: bytes, fmt: str | None = None) -> list[ParsedRecord]:
    items = read(data, fmt)
    assert all(isinstance(i, ParsedRecord) for i in items), [i for i in items if isinstance(i, RejectedRecord)]
    return [i for i in items if isinstance(i, ParsedRecord)]


# --- timestamps ------------------------------------------------------------------------------------------------
def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


TIMESTAMPS = [
    ("2024-01-01T12:00:00Z", utc(2024, 1, 1, 12)),
    ("2024-01-01T12:00:00.123+02:00", utc(2024, 1, 1, 10, 0, 0, 123000)),
    ("2024-01-01 12:00:00,123", utc(2024, 1, 1, 12, 0, 0, 123000)),
    ("2024-01-01 12:00:00.123456789Z", utc(2024, 1, 1, 12, 0, 0, 123456)),
    ("2024-01-01T12:00:00 +0100", utc(2024, 1, 1, 11)),
    ("2024-01-01 12:00:00 UTC", utc(2024, 1, 1, 12)),
    ("2024-01-01", utc(2024, 1, 1)),
    (1704110400, utc(2024, 1, 1, 12)),
    (1704110400.5, utc(2024, 1, 1, 12, 0, 0, 500000)),
    (1704110400123, utc(2024, 1, 1, 12, 0, 0, 123000)),
    (1704110400123456, utc(2024, 1, 1, 12, 0, 0, 123456)),
    (1704110400123456789, utc(2024, 1, 1, 12, 0, 0, 123456)),
    ("1704110400", utc(2024, 1, 1, 12)),
    ("1704110400123", utc(2024, 1, 1, 12, 0, 0, 123000)),
    ("10/Oct/2000:13:55:36 -0700", utc(2000, 10, 10, 20, 55, 36)),
    ("Sun Dec 04 04:47:44 2005", utc(2005, 12, 4, 4, 47, 44)),
    ("Wed Oct 11 14:32:52.123456 2000", utc(2000, 10, 11, 14, 32, 52, 123456)),
    ("Jun 14 15:16:01", utc(2024, 6, 14, 15, 16, 1)),  # nearest past: this year
    ("Dec 31 23:59:59", utc(2023, 12, 31, 23, 59, 59)),  # would be in the future: last year
    ("Jul  1 00:21:28", utc(2023, 7, 1, 0, 21, 28)),
    ("081109 203615", utc(2008, 11, 9, 20, 36, 15)),
    ("17/06/09 20:10:40", utc(2017, 6, 9, 20, 10, 40)),
    ("2024/01/31 08:00:01", utc(2024, 1, 31, 8, 0, 1)),
    ("03-17 16:13:38.811", utc(2024, 3, 17, 16, 13, 38, 811000)),
    ("20171223-22:15:29:606", utc(2017, 12, 23, 22, 15, 29, 606000)),
    ("20171224-1:2:35:78", utc(2017, 12, 24, 1, 2, 35, 78000)),
    ("Tue, 10 Oct 2000 13:55:36 +0000", utc(2000, 10, 10, 13, 55, 36)),
    ("not a time", None),
    ("", None),
    (True, None),
    ("2024-13-45 99:00:00", None),
]


@pytest.mark.parametrize(("value", "expected"), TIMESTAMPS)
def test_parse_timestamp(value: object, expected: datetime | None) -> None:
    assert parse_timestamp(value, now=NOW) == expected


def test_naive_timestamps_use_the_configured_zone() -> None:
    assert parse_timestamp("2024-01-01 12:00:00", naive_tz="Europe/Paris") == utc(2024, 1, 1, 11)
    assert parse_timestamp("2024-07-01 12:00:00", naive_tz="Europe/Paris") == utc(2024, 7, 1, 10)
    aware = datetime(2024, 1, 1, 12, tzinfo=timezone(timedelta(hours=5)))
    assert parse_timestamp(aware, naive_tz="Europe/Paris") == utc(2024, 1, 1, 7)


# --- levels ------------------------------------------------------------------------------------------------------
LEVELS = [
    ("warn", "WARNING"), ("Warning", "WARNING"), ("err", "ERROR"), ("ERROR", "ERROR"), ("fatal", "CRITICAL"),
    ("crit", "CRITICAL"), ("critical", "CRITICAL"), ("severe", "ERROR"), ("trace", "DEBUG"), ("verbose", "DEBUG"),
    ("fine", "DEBUG"), ("notice", "INFO"), ("alert", "CRITICAL"), ("emerg", "CRITICAL"), ("emergency", "CRITICAL"),
    ("info", "INFO"), ("debug", "DEBUG"), ("[error]", "ERROR"),
    (0, "CRITICAL"), (2, "CRITICAL"), (3, "ERROR"), (4, "WARNING"), (5, "INFO"), (6, "INFO"), (7, "DEBUG"),
    ("3", "ERROR"), (10, "DEBUG"), (40, "ERROR"),
    ("V", "DEBUG"), ("D", "DEBUG"), ("I", "INFO"), ("W", "WARNING"), ("E", "ERROR"), ("F", "CRITICAL"),
    ("A", "CRITICAL"), ("combo", None), ("", None), (None, None), (True, None), (99, None),
]  # fmt: skip


@pytest.mark.parametrize(("value", "expected"), LEVELS)
def test_normalise_level(value: object, expected: str | None) -> None:
    assert normalise_level(value) == expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [(1, "DEBUG"), (5, "DEBUG"), (9, "INFO"), (12, "INFO"), (13, "WARNING"), (17, "ERROR"), (21, "CRITICAL"),
     (24, "CRITICAL"), (0, None), (25, None), ("17", "ERROR")],
)  # fmt: skip
def test_otel_severity(number: object, expected: str | None) -> None:
    assert normalise_otel_severity(number) == expected


# --- normalisation -----------------------------------------------------------------------------------------------
def test_aliases_map_onto_the_event() -> None:
    record = {
        "@timestamp": "2024-01-01T12:00:00.5Z",
        "severity": "warn",
        "statusCode": "404",
        "duration_ms": "12.5",
        "hostname": "web-1",
        "tenantId": "acme",
        "userId": 42,
        "remote_addr": "10.0.0.1",
        "request_path": "/api/x",
        "verb": "post",
        "app": "shop",
        "msg": "not found",
        "traceId": "abc",
        "spanId": "def",
        "region": "eu",
    }
    event = normalise(record, source="http", limits=LIMITS)
    assert event.timestamp == utc(2024, 1, 1, 12, 0, 0, 500000)
    assert (event.level, event.status_code, event.response_time_ms) == ("WARNING", 404, 12.5)
    assert (event.server, event.tenant_id, event.user_id, event.client_ip) == ("web-1", "acme", "42", "10.0.0.1")
    assert (event.endpoint, event.method, event.service, event.message) == ("/api/x", "POST", "shop", "not found")
    assert (event.trace_id, event.span_id, event.source) == ("abc", "def", "http")
    assert event.attrs == {"region": "eu"}
    assert len(event.id) == 26


def test_nested_fields_are_flattened_before_aliasing() -> None:
    record = {
        "log": {"level": "error"},
        "http": {"status_code": 503, "request": {"headers": {"x-id": "7"}}},
        "host": {"name": "db-2"},
        "service": {"name": "billing"},
        "trace": {"id": "t1"},
        "tags": ["a", "b"],
        "ok": True,
        "ratio": 0.5,
        "message": "down",
    }
    event = normalise(record, source="http", limits=LIMITS)
    assert (event.level, event.status_code, event.server, event.service) == ("ERROR", 503, "db-2", "billing")
    assert event.trace_id == "t1"
    assert event.attrs == {"http.request.headers.x-id": "7", "tags": '["a","b"]', "ok": "true", "ratio": "0.5"}


def test_canonical_name_wins_over_alias_and_alias_is_kept() -> None:
    event = normalise({"msg": "short", "message": "full"}, source="http", limits=LIMITS)
    assert event.message == "full"
    assert event.attrs == {"msg": "short"}


def test_missing_level_is_derived_from_status_and_unknown_level_is_kept() -> None:
    assert normalise({"status": 502}, source="http", limits=LIMITS).level == "ERROR"
    assert normalise({"status": 429}, source="http", limits=LIMITS).level == "WARNING"
    odd = normalise({"level": "chatty", "message": "x"}, source="http", limits=LIMITS)
    assert odd.level == "INFO"
    assert odd.attrs == {"level": "chatty"}
    assert normalise({"severityNumber": 17}, source="otlp", limits=LIMITS).level == "ERROR"


def test_missing_timestamp_is_ingest_time() -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    event = normalise({"message": "x"}, source="http", limits=LIMITS)
    assert before <= event.timestamp <= datetime.now(UTC)
    assert normalise({"message": "x"}, source="http", limits=LIMITS, now=NOW).timestamp == NOW


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"status": "abc"}, "status_code: not an integer"),
        ({"status": 12.5}, "status_code: not an integer"),
        ({"status": True}, "status_code: not an integer"),
        ({"status": 1200}, "status_code: 1200 out of range"),
        ({"latency": "slow"}, "response_time_ms: not a number"),
        ({"latency": -1}, "response_time_ms: -1.0 is not a finite number"),
        ({"timestamp": "yesterday-ish"}, "timestamp: unrecognised value"),
        ({"user_id": ["a"]}, None),  # lists are not identifiers: rejected too
    ],
)
def test_bad_values_are_rejected_with_a_reason(record: dict[str, object], reason: str | None) -> None:
    with pytest.raises(RecordError) as caught:
        normalise(record, source="http", limits=LIMITS)
    if reason is not None:
        assert caught.value.reason.startswith(reason)


def test_status_strings_are_coerced() -> None:
    assert normalise({"status": " 500 ", "latency": 3}, source="http", limits=LIMITS).status_code == 500
    assert normalise({"status": 201.0}, source="http", limits=LIMITS).status_code == 201


def test_depth_over_the_limit_is_rejected() -> None:
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(32):
        deep = {"n": deep}
    with pytest.raises(RecordError, match="nesting deeper than 32"):
        normalise(deep, source="http", limits=LIMITS)
    ok: dict[str, object] = {"leaf": 1}
    for _ in range(31):
        ok = {"n": ok}
    assert normalise(ok, source="http", limits=LIMITS).attrs == {"n." * 31 + "leaf": "1"}
    deep_list: object = 1
    for _ in range(40):
        deep_list = [deep_list]
    with pytest.raises(RecordError, match="nesting deeper"):
        normalise({"x": deep_list}, source="http", limits=LIMITS)


def test_too_many_fields_are_dropped_and_counted() -> None:
    limits = ParseLimits(max_fields_per_event=10)
    record = {f"f{i}": i for i in range(25)} | {"message": "m"}
    event, dropped = normalise_counted(record, source="http", limits=limits)
    assert len(event.attrs) == 10
    assert dropped == 15
    assert event.message == "m"
    assert event.attrs["f0"] == "0"


def test_attrs_prefix_of_our_own_export_is_stripped() -> None:
    event = normalise({"message": "m", "attrs": {"sql_query": "SELECT 1"}, "id": "x"}, source="http", limits=LIMITS)
    assert event.attrs == {"sql_query": "SELECT 1", "id": "x"}  # incoming ids are never trusted
    assert event.id != "x"


# --- line formats ---------------------------------------------------------------------------------------------------
NGINX = (
    '203.0.113.7 - alice [10/Oct/2023:13:55:36 +0000] "GET /api/orders?page=2 HTTP/1.1" 502 1234 '
    '"https://example.com/" "Mozilla/5.0 (X11; Linux x86_64)"'
)
COMMON = '127.0.0.1 - - [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326'
APACHE_ERROR = (
    "[Wed Oct 11 14:32:52.123456 2000] [core:error] [pid 35708:tid 4328636416] [client 72.15.99.187:5555] "
    "File does not exist: /usr/local/apache2/htdocs/favicon.ico"
)
SYSLOG_3164 = "<34>Oct 11 22:14:15 mymachine su[123]: 'su root' failed for lonvick on /dev/pts/8"
SYSLOG_5424 = (
    '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" '
    'eventSource="Application" eventID="1011"] An application event log entry'
)
LOGFMT = 'ts=2024-01-01T12:00:00Z level=error msg="payment failed: card \\"declined\\"" status=402 tenant=t9 retry'
PYTHON = "2024-01-01 12:00:00,123 WARNING app.db: pool exhausted: 10 waiting"
LOG4J = "2024-01-01 12:00:00.123 [main] ERROR com.acme.OrderService - Order failed"


@pytest.mark.parametrize(
    ("line", "fmt", "expected"),
    [
        (
            NGINX,
            "nginx_combined",
            {"client_ip": "203.0.113.7", "user_id": "alice", "method": "GET", "endpoint": "/api/orders",
             "status_code": 502, "level": "ERROR", "message": "GET /api/orders?page=2 HTTP/1.1",
             "timestamp": utc(2023, 10, 10, 13, 55, 36),
             "attrs": {"query": "page=2", "protocol": "HTTP/1.1", "bytes": "1234", "referer": "https://example.com/",
                       "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"}},
        ),
        (
            COMMON,
            "common",
            {"client_ip": "127.0.0.1", "status_code": 200, "level": "INFO", "endpoint": "/apache_pb.gif",
             "timestamp": utc(2000, 10, 10, 20, 55, 36)},
        ),
        (
            APACHE_ERROR,
            "apache_error",
            {"level": "ERROR", "client_ip": "72.15.99.187", "timestamp": utc(2000, 10, 11, 14, 32, 52, 123000),
             "attrs": {"module": "core", "pid": "35708", "tid": "4328636416"}},
        ),
        (
            SYSLOG_3164,
            "syslog_3164",
            {"level": "CRITICAL", "server": "mymachine", "service": "su",
             "message": "'su root' failed for lonvick on /dev/pts/8", "timestamp": utc(2023, 10, 11, 22, 14, 15),
             "attrs": {"pid": "123", "facility": "auth"}},
        ),
        (
            SYSLOG_5424,
            "syslog_5424",
            {"level": "INFO", "server": "mymachine.example.com", "service": "evntslog",
             "message": "An application event log entry", "timestamp": utc(2003, 10, 11, 22, 14, 15, 3000),
             "attrs": {"msgid": "ID47", "facility": "local4", "sd.exampleSDID@32473.iut": "3",
                       "sd.exampleSDID@32473.eventSource": "Application", "sd.exampleSDID@32473.eventID": "1011"}},
        ),
        (
            LOGFMT,
            "logfmt",
            {"level": "ERROR", "status_code": 402, "tenant_id": "t9", "message": 'payment failed: card "declined"',
             "timestamp": utc(2024, 1, 1, 12), "attrs": {"retry": "true"}},
        ),
        (
            PYTHON,
            "python",
            {"level": "WARNING", "service": "app.db", "message": "pool exhausted: 10 waiting",
             "timestamp": utc(2024, 1, 1, 12, 0, 0, 123000)},
        ),
        (
            LOG4J,
            "log4j",
            {"level": "ERROR", "service": "com.acme.OrderService", "message": "Order failed",
             "attrs": {"thread": "main"}},
        ),
    ],
)  # fmt: skip
def test_each_format_is_detected_and_parsed(line: str, fmt: str, expected: dict[str, object]) -> None:
    assert detect_format([line, line]) == fmt
    event = normalise(parse_line(fmt, line), source="upload", limits=LIMITS, now=NOW)
    for key, value in expected.items():
        assert getattr(event, key) == value, key


def test_detection_of_structured_inputs() -> None:
    assert detect_format(['[{"a": 1},', '{"a": 2}]']) == "json"
    assert detect_format(["[", '  {"a": 1}']) == "json"
    assert detect_format(['{"a": 1}', '{"a": 2}']) == "ndjson"
    assert detect_format(["{", '  "a": 1', "}"]) == "json"
    assert detect_format(["timestamp,level,message", "2024-01-01T00:00:00Z,INFO,hi"]) == "csv"
    assert detect_format(["[2024-01-01 12:00:00] production.ERROR: boom"]) == "text"
    assert detect_format(["just some words", "and more words"]) == "text"
    assert detect_format([]) == "text"


def test_unfit_line_becomes_a_plain_event() -> None:
    record = parse_line("python", "2024-01-02T03:04:05Z something odd happened")
    event = normalise(record, source="upload", limits=LIMITS)
    assert event.message == "2024-01-02T03:04:05Z something odd happened"
    assert event.timestamp == utc(2024, 1, 2, 3, 4, 5)
    no_time = normalise(parse_line("syslog_3164", "plain words"), source="upload", limits=LIMITS, now=NOW)
    assert (no_time.message, no_time.timestamp) == ("plain words", NOW)


# --- streaming ------------------------------------------------------------------------------------------------------
def test_log4j_stack_trace_is_joined_to_its_event() -> None:
    data = (
        b"2024-01-01 12:00:00.123 [main] INFO  com.acme.App - starting\n"
        b"2024-01-01 12:00:01.000 [main] ERROR com.acme.App - request failed\n"
        b"java.lang.IllegalStateException: boom\n"
        b"\tat com.acme.App.handle(App.java:42)\n"
        b"\tat com.acme.App.main(App.java:10)\n"
        b"Caused by: java.io.IOException: disk\n"
        b"\t... 2 more\n"
        b"2024-01-01 12:00:02.000 [main] INFO  com.acme.App - recovered\n"
    )
    parsed = events(data)
    assert [p.line_number for p in parsed] == [1, 2, 8]
    assert parsed[1].event.level == "ERROR"
    assert parsed[1].event.message == (
        "request failed\njava.lang.IllegalStateException: boom\n\tat com.acme.App.handle(App.java:42)\n"
        "\tat com.acme.App.main(App.java:10)\nCaused by: java.io.IOException: disk\n\t... 2 more"
    )
    assert parsed[2].event.message == "recovered"


def test_multiline_event_is_bounded() -> None:
    limits = ParseLimits(max_line_bytes=256, multiline_factor=2)
    data = b"2024-01-01 12:00:00,000 ERROR app: boom\n" + b"\tat frame.of.a.deep.stack(Trace.java:1)\n" * 100
    items = read(data, limits=limits)
    assert len(items) == 1 and isinstance(items[0], ParsedRecord)
    assert len(items[0].event.message) <= 512
    assert items[0].event.attrs["truncated"] == "true"


def test_csv_with_quoted_newline_keeps_line_numbers() -> None:
    data = (
        b"timestamp,level,status_code,message,endpoint,extra_col\r\n"
        b'2024-01-01T00:00:00Z,INFO,200,"first line\nsecond line",/a,x\r\n'
        b"2024-01-01T00:00:01Z,ERROR,500,boom,/b,\r\n"
        b"\r\n"
        b"2024-01-01T00:00:02Z,WARN,abc,bad status,/c,\r\n"
        b'2024-01-01T00:00:03Z,WARN,404,"say ""hi""",/d,\r\n'
    )
    items = read(data)
    assert [(type(i).__name__, i.line_number) for i in items] == [
        ("ParsedRecord", 2),
        ("ParsedRecord", 4),
        ("RejectedRecord", 6),
        ("ParsedRecord", 7),
    ]
    first = items[0]
    assert isinstance(first, ParsedRecord)
    assert first.event.message == "first line\nsecond line"
    assert first.event.attrs == {"extra_col": "x"}
    assert isinstance(items[2], RejectedRecord) and items[2].reason.startswith("status_code")
    assert isinstance(items[3], ParsedRecord) and items[3].event.message == 'say "hi"'


def test_ndjson_escapes_and_raw_line_separator_stay_in_one_event() -> None:
    data = (
        orjson.dumps({"message": "a\nb\r\nc\u2028d", "level": "info"})
        + b"\n"
        # a raw U+2028 inside the line must not split it
        + '{"message": "raw\u2028sep", "level": "warn"}\n'.encode()
    )
    assert "\u2028".encode() in data
    parsed = events(data)
    assert [p.event.message for p in parsed] == ["a\nb\r\nc\u2028d", "raw\u2028sep"]
    assert [p.line_number for p in parsed] == [1, 2]


def test_bad_ndjson_line_is_reported_and_the_rest_kept() -> None:
    data = b'{"message": "one"}\n{"message": "two"\n\n[1, 2]\n{"message": "three"}\r\n'
    items = read(data)
    assert [(type(i).__name__, i.line_number) for i in items] == [
        ("ParsedRecord", 1),
        ("RejectedRecord", 2),
        ("RejectedRecord", 4),
        ("ParsedRecord", 5),
    ]
    assert isinstance(items[1], RejectedRecord) and items[1].reason.startswith("invalid JSON")
    assert isinstance(items[2], RejectedRecord) and items[2].reason == "JSON value is not an object"


def test_line_longer_than_the_limit_is_rejected_and_reading_resyncs() -> None:
    limits = ParseLimits(max_line_bytes=256)
    long_line = b'{"message": "' + b"x" * 5000 + b'"}'
    data = b'{"message": "a"}\n' + long_line + b'\n{"message": "b"}\n' + b"y" * 300
    items = read(data, "ndjson", limits)
    assert [(type(i).__name__, i.line_number) for i in items] == [
        ("ParsedRecord", 1),
        ("RejectedRecord", 2),
        ("ParsedRecord", 3),
        ("RejectedRecord", 4),
    ]
    assert isinstance(items[1], RejectedRecord) and items[1].reason == "line longer than 256 bytes"
    # exactly at the limit is fine, with either line ending
    exact = b'{"message": "' + b"z" * (256 - 15) + b'"}'
    assert len(exact) == 256
    assert [type(i).__name__ for i in read(exact + b"\r\n" + exact, "ndjson", limits)] == ["ParsedRecord"] * 2


def test_json_array_is_streamed_element_by_element() -> None:
    elements = [{"message": f"m{i}", "level": "info", "note": 'tricky ] } , " \\ chars'} for i in range(3000)]
    data = b"[\n" + b",\n".join(orjson.dumps(e) for e in elements) + b"\n]\n"
    assert len(data) > 3 * 64 * 1024  # spans several read chunks
    parsed = events(data)
    assert [p.event.message for p in parsed] == [f"m{i}" for i in range(3000)]
    assert parsed[0].line_number == 2 and parsed[-1].line_number == 3001
    assert parsed[5].event.attrs["note"] == 'tricky ] } , " \\ chars'


def test_json_array_oversized_deep_and_non_object_elements_are_rejected() -> None:
    limits = ParseLimits(max_line_bytes=256, multiline_factor=2)
    deep = "[" * 40 + "]" * 40
    big = '{"message": "' + "x" * 2000 + '"}'
    data = f'[{{"message": "ok"}}, {big}, {{"a": {deep}}}, 5, {{"message": "end"}}]'.encode()
    items = read(data, None, limits)
    kinds = [(type(i).__name__, getattr(i, "reason", "")) for i in items]
    assert kinds == [
        ("ParsedRecord", ""),
        ("RejectedRecord", "JSON element larger than 512 bytes"),
        ("RejectedRecord", "JSON nesting deeper than 32 levels"),
        ("RejectedRecord", "JSON array element is not an object"),
        ("ParsedRecord", ""),
    ]


def test_truncated_json_array_reports_the_end() -> None:
    items = read(b'[{"message": "a"}, {"message": "b"')
    assert isinstance(items[0], ParsedRecord)
    assert isinstance(items[1], RejectedRecord) and "unterminated" in items[1].reason


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "PNG image"),
        (b"\x1f\x8b\x08\x00" + b"\x00" * 50, "gzip-compressed data"),
        (b"hello\x00world\x00" * 50, "contains NUL bytes"),
        (b"\xff\xfe\xfa\xfb\n" * 5 + bytes(range(128, 250)) + b"\n", "UTF-16 text"),
        ((b"\xc3\x28 invalid utf8 \xa0\xa1\n") * 10, "not UTF-8 text"),
    ],
)
def test_binary_input_is_not_a_log(data: bytes, what: str) -> None:
    with pytest.raises(NotALogError) as caught:
        iter_records(io.BytesIO(data), fmt=None, limits=LIMITS)
    assert caught.value.reason.startswith("file looks binary (")
    assert what in caught.value.reason


def test_detected_format_is_reported_and_bom_is_ignored() -> None:
    reader = iter_records(io.BytesIO(b"\xef\xbb\xbf" + (PYTHON + "\n").encode() * 3), fmt=None, limits=LIMITS)
    assert reader.format == "python"
    assert len(list(reader)) == 3
    with pytest.raises(ValueError, match="unknown format"):
        iter_records(io.BytesIO(b"x"), fmt="yaml", limits=LIMITS)


def test_syslog_file_with_stray_lines_keeps_every_line() -> None:
    data = (SYSLOG_3164 + "\n  indented but syslog lines never join\n" + SYSLOG_3164 + "\n").encode()
    parsed = events(data)
    assert len(parsed) == 3
    assert parsed[1].event.message == "indented but syslog lines never join"


# --- payloads --------------------------------------------------------------------------------------------------------
def test_payload_single_object_array_and_ndjson() -> None:
    events_, rejected = parse_payload(b'{"message": "one"}', "application/json", limits=LIMITS)
    assert [e.message for e in events_] == ["one"] and rejected == []
    assert all(e.source == "http" for e in events_)

    body = b'[{"message": "a"}, {"status": "x"}, 3, {"message": "d"}]'
    events_, rejected = parse_payload(body, "application/json", limits=LIMITS)
    assert [e.message for e in events_] == ["a", "d"]
    assert [(r.index, r.reason[:11]) for r in rejected] == [(1, "status_code"), (2, "JSON array ")]

    body = b'{"message": "a"}\n{"message": \n{"message": "c"}\n'
    for content_type in ("application/x-ndjson", "application/json", None):
        result = parse_payload(body, content_type, limits=LIMITS)
        assert [e.message for e in result.events] == ["a", "c"]
        assert [r.index for r in result.rejected] == [1]


def test_payload_counts_dropped_fields_and_handles_empty_and_broken_bodies() -> None:
    limits = ParseLimits(max_fields_per_event=8)
    result = parse_payload(orjson.dumps([{f"k{i}": i for i in range(12)}]), None, limits=limits)
    assert result.dropped_fields == 4
    assert parse_payload(b"  \n", None, limits=LIMITS).events == []
    broken = parse_payload(b'[{"message": "a"', "application/json", limits=LIMITS)
    assert broken.events == [] and broken.rejected[0].reason.startswith("invalid JSON")
    with pytest.raises(NotALogError):
        parse_payload(b"\x89PNG\r\n\x1a\n\x00\x00", None, limits=LIMITS)


def test_limits_from_settings() -> None:
    from shared.settings import Settings

    settings = Settings(internal_token="x" * 40, max_line_bytes=1024, max_json_depth=8, naive_timezone="Asia/Tokyo")
    limits = ParseLimits.from_settings(settings)
    assert (limits.max_line_bytes, limits.max_json_depth, limits.max_fields_per_event) == (1024, 8, 256)
    assert limits.naive_timezone == "Asia/Tokyo"
