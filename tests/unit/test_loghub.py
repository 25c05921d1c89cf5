"""Every Loghub system parses with auto-detection and matches the hand-made ground truth.

Assumptions per system (applied identically to our events and to the ground truth):
- Android (MM-dd) and Linux/OpenSSH (syslog "Mon dd") carry no year: the year is the one
  that puts the timestamp nearest in the past of NOW (2018-01-01 UTC), i.e. 2017.
- HDFS yyMMdd and Spark yy/MM/dd are 20yy. HealthApp writes unpadded fields, its last
  field is milliseconds ("…:60" is 60 ms). Every zone-less timestamp is UTC.
- Level is compared where the CSV has a real level column: Linux's "Level" column is the
  host name (Loghub's format puts the host there), so it is skipped; HealthApp and OpenSSH
  have none. Messages must equal ``Content`` exactly.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.ingest.parsing import ParsedRecord, ParseLimits, iter_records, normalise_level

LOGHUB = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "loghub"
SYSTEMS = ("Android", "Apache", "HDFS", "Hadoop", "HealthApp", "Linux", "OpenSSH", "OpenStack", "Spark", "Zookeeper")
NOW = datetime(2018, 1, 1, tzinfo=UTC)
MONTHS = {m: i + 1 for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())}
EXPECTED_FORMAT = {
    "Android": "android",
    "Apache": "apache_error",
    "HDFS": "hdfs",
    "Hadoop": "log4j",
    "HealthApp": "healthapp",
    "Linux": "syslog_3164",
    "OpenSSH": "syslog_3164",
    "OpenStack": "openstack",
    "Spark": "spark",
    "Zookeeper": "zookeeper",
}
LEVEL_COLUMN = {"Android", "Apache", "HDFS", "Hadoop", "OpenStack", "Spark", "Zookeeper"}


def _clock(text: str) -> tuple[int, int, int, int]:
    """H:M:S with an optional ,fff or .fff fraction -> (h, m, s, microseconds)."""
    main, _, frac = text.replace(",", ".").partition(".")
    h, m, s = (int(p) for p in main.split(":"))
    return h, m, s, int((frac + "000000")[:6]) if frac else 0


def expected_timestamp(system: str, row: dict[str, str]) -> datetime:
    """The ground-truth timestamp of one structured row, interpreted as documented above."""
    if system == "Android":
        month, day = (int(p) for p in row["Date"].split("-"))
        return datetime(2017, month, day, *_clock(row["Time"]), tzinfo=UTC)
    if system == "Apache":  # Sun Dec 04 04:47:44 2005
        _, mon, mday, clock, yyyy = row["Time"].split()
        return datetime(int(yyyy), MONTHS[mon], int(mday), *_clock(clock), tzinfo=UTC)
    if system == "HDFS":
        d, t = row["Date"], row["Time"]
        return datetime(2000 + int(d[:2]), int(d[2:4]), int(d[4:]), int(t[:2]), int(t[2:4]), int(t[4:]), tzinfo=UTC)
    if system in ("Hadoop", "OpenStack", "Zookeeper"):
        year, month, day = (int(p) for p in row["Date"].split("-"))
        return datetime(year, month, day, *_clock(row["Time"]), tzinfo=UTC)
    if system == "HealthApp":  # 20171223-22:15:29:606, unpadded
        date, _, clock = row["Time"].partition("-")
        hh, mm, ss, ms = (int(p) for p in clock.split(":"))
        return datetime(int(date[:4]), int(date[4:6]), int(date[6:]), hh, mm, ss, ms * 1000, tzinfo=UTC)
    if system == "Linux":
        return datetime(2017, MONTHS[row["Month"]], int(row["Date"]), *_clock(row["Time"]), tzinfo=UTC)
    if system == "OpenSSH":
        return datetime(2017, MONTHS[row["Date"]], int(row["Day"]), *_clock(row["Time"]), tzinfo=UTC)
    if system == "Spark":
        yy, mo, dd = (int(p) for p in row["Date"].split("/"))
        return datetime(2000 + yy, mo, dd, *_clock(row["Time"]), tzinfo=UTC)
    raise AssertionError(f"no interpretation for {system}")


@pytest.mark.parametrize("system", SYSTEMS)
def test_loghub_system(system: str) -> None:
    folder = LOGHUB / system
    if not folder.is_dir():
        pytest.skip(f"Loghub data not found at {folder} (the read-only ../shared/data beside the repo)")
    with open(folder / f"{system}_2k.log_structured.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    with open(folder / f"{system}_2k.log", "rb") as fh:
        reader = iter_records(fh, fmt=None, limits=ParseLimits(), now=NOW)
        items = list(reader)

    assert reader.format == EXPECTED_FORMAT[system]
    events = [item for item in items if isinstance(item, ParsedRecord)]
    assert len(rows) == 2000
    assert len(events) == len(items) == 2000, f"{system}: {len(items) - len(events)} rejected"
    # One event per ground-truth line: multi-line joining must not merge lines.
    assert [e.line_number for e in events] == [int(r["LineId"]) for r in rows]

    ts_ok = sum(e.event.timestamp == expected_timestamp(system, r) for e, r in zip(events, rows, strict=True))
    msg_ok = sum(e.event.message == r["Content"] for e, r in zip(events, rows, strict=True))
    level_ok = (
        sum(e.event.level == normalise_level(r["Level"]) for e, r in zip(events, rows, strict=True))
        if system in LEVEL_COLUMN
        else len(rows)
    )
    report = (
        f"{system}: timestamp {ts_ok / 20:.2f}%  level {level_ok / 20:.2f}%  message {msg_ok / 20:.2f}%"
        f"  (format {reader.format})"
    )
    assert min(ts_ok, level_ok, msg_ok) >= 0.99 * len(rows), report
