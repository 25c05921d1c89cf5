"""Timestamp parsing for every shape the ingest sees (ISO 8601, epochs, syslog, Loghub systems).

Every function returns an aware UTC datetime. A timestamp without a zone is read in the
configured naive zone; one without a year (syslog, Android logcat) gets the year that puts
it nearest in the past relative to ``now``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

# Tuples, not `int | float`: a union in isinstance is rebuilt on every call (hot path).
_NUMBERS: Final = (int, float)
_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)
_MONTHS: Final[dict[str, int]] = {
    name: i + 1
    for i, name in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))
}
# A yearless timestamp up to this far ahead of `now` is still taken as this year: clocks of
# the emitting host and of ingest disagree, and zones shift the date by up to a day.
_FUTURE_SLACK: Final[timedelta] = timedelta(days=2)

_ISO: Final[re.Pattern[str]] = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
# 10/Oct/2000:13:55:36 -0700 (Apache/nginx access logs)
_ACCESS: Final[re.Pattern[str]] = re.compile(
    r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:\s*([+-]\d{4}|Z))?"
)
# Sun Dec 04 04:47:44 2005, Wed Oct 11 14:32:52.123456 2000 (ctime, Apache error log)
_CTIME: Final[re.Pattern[str]] = re.compile(
    r"(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s+(\d{4})"
)
# Oct 11 22:14:15 / Jul  1 00:21:28 (RFC 3164, no year), optionally "Oct 11 2023 22:14:15"
_SYSLOG: Final[re.Pattern[str]] = re.compile(
    r"(?:[A-Za-z]{3},?\s+)?([A-Za-z]{3})\s+(\d{1,2})(?:\s+(\d{4}))?\s+(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
)
# Tue, 10 Oct 2000 13:55:36 +0000 (RFC 2822)
_RFC2822: Final[re.Pattern[str]] = re.compile(
    r"(?:[A-Za-z]{3},?\s+)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{2}):(\d{2})(?::(\d{2}))?"
    r"(?:\s*(Z|GMT|UTC|[+-]\d{4}))?",
    re.IGNORECASE,
)
# 081109 203615 (HDFS: yyMMdd HHmmss)
_HDFS: Final[re.Pattern[str]] = re.compile(r"(\d{2})(\d{2})(\d{2})\s+(\d{2})(\d{2})(\d{2})")
# 17/06/09 20:10:40 (Spark: yy/MM/dd) and 2024/01/31 12:00:00 (nginx error log: yyyy/MM/dd)
_SLASH_YMD: Final[re.Pattern[str]] = re.compile(
    r"(\d{4}|\d{2})/(\d{2})/(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?"
)
# 03-17 16:13:38.811 (Android logcat: MM-dd, no year)
_MONTH_DAY: Final[re.Pattern[str]] = re.compile(r"(\d{2})-(\d{2})\s+(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?")
# 20171223-22:15:29:606 (HealthApp: unpadded hour/minute/second/millisecond fields)
_HEALTHAPP: Final[re.Pattern[str]] = re.compile(r"(\d{4})(\d{2})(\d{2})-(\d{1,2}):(\d{1,2}):(\d{1,2})(?::(\d{1,3}))?")
_EPOCH_TEXT: Final[re.Pattern[str]] = re.compile(r"\d{9,19}(?:\.\d+)?")

# The timestamp shapes as they appear at the start of a text line, longest first so
# "2015-10-18 18:01:47,978" is not cut at the seconds.
TIMESTAMP_PREFIX: Final[re.Pattern[str]] = re.compile(
    r"(?:"
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:\s?(?:Z|[+-]\d{2}:?\d{2}))?"
    r"|\d{8}-\d{1,2}:\d{1,2}:\d{1,2}(?::\d{1,3})?"
    r"|(?:\d{4}|\d{2})/\d{2}/\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
    r"|\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2}(?:\s[+-]\d{4})?"
    r"|[A-Za-z]{3}\s[A-Za-z]{3}\s+\d{1,2}\s\d{2}:\d{2}:\d{2}(?:\.\d+)?\s\d{4}"
    r"|[A-Za-z]{3}\s+\d{1,2}\s\d{2}:\d{2}:\d{2}(?:\.\d+)?"
    r"|\d{2}-\d{2}\s\d{2}:\d{2}:\d{2}(?:\.\d+)?"
    r"|\d{6}\s\d{6}(?=\s)"
    r")"
)


@lru_cache(maxsize=64)
def _zone(name: str) -> tzinfo:
    if name.upper() in {"UTC", "Z", "GMT"}:
        return UTC
    return ZoneInfo(name)


def _micro(fraction: str | None) -> int:
    if not fraction:
        return 0
    return int((fraction + "000000")[:6])


def _offset(text: str | None) -> tzinfo | None:
    if not text:
        return None
    if text.upper() in {"Z", "UTC", "GMT"}:
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def _finish(value: datetime, zone: tzinfo | None, naive_tz: str) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone or _zone(naive_tz))
    return value.astimezone(UTC)


def _month(name: str) -> int | None:
    return _MONTHS.get(name[:3].lower())


def from_epoch(number: float | int) -> datetime | None:
    """Epoch seconds, ms, µs or ns to UTC, the unit chosen by magnitude; None when out of range."""
    magnitude = abs(number)
    # Seconds up to 1e11 reach year 5138; anything larger is a finer unit.
    if magnitude < 1e11:
        micros = number * 1_000_000
    elif magnitude < 1e14:
        micros = number * 1_000
    elif magnitude < 1e17:
        micros = number
    else:
        micros = number / 1_000
    try:
        return _EPOCH + timedelta(microseconds=int(micros))
    except OverflowError:
        return None


def _yearless(
    month: int, day: int, clock: tuple[int, int, int, int], naive_tz: str, now: datetime | None
) -> datetime | None:
    zone = _zone(naive_tz)
    reference = (now or datetime.now(UTC)).astimezone(zone)
    # Feb 29 has no date in most years: walk back to the nearest year where it exists.
    for year in range(reference.year, reference.year - 8, -1):
        try:
            candidate = datetime(year, month, day, *clock, tzinfo=zone)
        except ValueError:
            continue
        if candidate <= reference + _FUTURE_SLACK:
            return candidate.astimezone(UTC)
    return None


def parse_timestamp(value: object, *, naive_tz: str = "UTC", now: datetime | None = None) -> datetime | None:
    """Parse a timestamp value of any supported shape to an aware UTC datetime; None if unrecognised."""
    if isinstance(value, datetime):
        return _finish(value, None, naive_tz)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, _NUMBERS):
        if value != value or value in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return from_epoch(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return _parse_text(text, naive_tz, now)
    except (ValueError, OverflowError):
        return None


def _parse_text(text: str, naive_tz: str, now: datetime | None) -> datetime | None:
    first = text[0]
    if first.isdigit():
        if len(text) >= 10 and text[4] == "-" and text[7] == "-":
            try:
                # C fast path: handles T or space, comma or dot, Z and offsets.
                return _finish(datetime.fromisoformat(text), None, naive_tz)
            except ValueError:
                pass
            m = _ISO.fullmatch(text)
            if m is None:
                return None
            y, mo, d, hh, mi, ss, frac, zone = m.groups()
            parsed = datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), _micro(frac))
            return _finish(parsed, _offset(zone), naive_tz)
        if _EPOCH_TEXT.fullmatch(text):
            return from_epoch(float(text) if "." in text else int(text))
        if (m := _HEALTHAPP.fullmatch(text)) is not None:
            y, mo, d, hh, mi, ss, ms = m.groups()
            parsed = datetime(int(y), int(mo), int(d), int(hh), int(mi), int(ss), int(ms or 0) * 1000)
            return _finish(parsed, None, naive_tz)
        if (m := _SLASH_YMD.fullmatch(text)) is not None:
            y, mo, d, hh, mi, ss, frac = m.groups()
            year = int(y) + (2000 if len(y) == 2 else 0)
            parsed = datetime(year, int(mo), int(d), int(hh), int(mi), int(ss), _micro(frac))
            return _finish(parsed, None, naive_tz)
        if (m := _ACCESS.fullmatch(text)) is not None:
            d, mon, y, hh, mi, ss, frac, zone = m.groups()
            month = _month(mon)
            if month is None:
                return None
            parsed = datetime(int(y), month, int(d), int(hh), int(mi), int(ss), _micro(frac))
            return _finish(parsed, _offset(zone), naive_tz)
        if (m := _HDFS.fullmatch(text)) is not None:
            y, mo, d, hh, mi, ss = (int(g) for g in m.groups())
            return _finish(datetime(2000 + y, mo, d, hh, mi, ss), None, naive_tz)
        if (m := _MONTH_DAY.fullmatch(text)) is not None:
            mo, d, hh, mi, ss, frac = m.groups()
            return _yearless(int(mo), int(d), (int(hh), int(mi), int(ss), _micro(frac)), naive_tz, now)
        if (m := _RFC2822.fullmatch(text)) is not None:
            return _rfc2822(m, naive_tz)
        return None
    if (m := _CTIME.fullmatch(text)) is not None:
        mon, d, hh, mi, ss, frac, y = m.groups()
        month = _month(mon)
        if month is None:
            return None
        parsed = datetime(int(y), month, int(d), int(hh), int(mi), int(ss), _micro(frac))
        return _finish(parsed, None, naive_tz)
    if (m := _SYSLOG.fullmatch(text)) is not None:
        mon, d, y, hh, mi, ss, frac = m.groups()
        month = _month(mon)
        if month is None:
            return None
        clock = (int(hh), int(mi), int(ss), _micro(frac))
        if y:
            return _finish(datetime(int(y), month, int(d), *clock), None, naive_tz)
        return _yearless(month, int(d), clock, naive_tz, now)
    if (m := _RFC2822.fullmatch(text)) is not None:
        return _rfc2822(m, naive_tz)
    return None


def _rfc2822(m: re.Match[str], naive_tz: str) -> datetime | None:
    d, mon, y, hh, mi, ss, zone = m.groups()
    month = _month(mon)
    if month is None:
        return None
    parsed = datetime(int(y), month, int(d), int(hh), int(mi), int(ss or 0))
    return _finish(parsed, _offset(zone), naive_tz)
