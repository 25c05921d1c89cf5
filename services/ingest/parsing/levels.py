"""Level normalisation onto DEBUG, INFO, WARNING, ERROR, CRITICAL (DESIGN.md §4)."""

from __future__ import annotations

from typing import Final

_NAMES: Final[dict[str, str]] = {
    # Debug-ish: trace/verbose (log4j, Android), java.util.logging FINE*.
    "trace": "DEBUG",
    "debug": "DEBUG",
    "dbg": "DEBUG",
    "verbose": "DEBUG",
    "fine": "DEBUG",
    "finer": "DEBUG",
    "finest": "DEBUG",
    "all": "DEBUG",
    # Info-ish: notice is syslog's "normal but significant", config is JUL's.
    "info": "INFO",
    "inf": "INFO",
    "information": "INFO",
    "informational": "INFO",
    "notice": "INFO",
    "config": "INFO",
    "ok": "INFO",
    # Warnings.
    "warn": "WARNING",
    "warning": "WARNING",
    "wrn": "WARNING",
    # Errors; java.util.logging calls its error level SEVERE.
    "err": "ERROR",
    "error": "ERROR",
    "eror": "ERROR",
    "severe": "ERROR",
    # Critical: fatal (log4j, Hadoop), crit/alert/emerg (syslog), panic (zap, Go).
    "fatal": "CRITICAL",
    "crit": "CRITICAL",
    "critical": "CRITICAL",
    "alert": "CRITICAL",
    "emerg": "CRITICAL",
    "emergency": "CRITICAL",
    "panic": "CRITICAL",
    "dpanic": "CRITICAL",
    # Android logcat letters (and the same letters many terse formats use).
    "v": "DEBUG",
    "d": "DEBUG",
    "i": "INFO",
    "w": "WARNING",
    "e": "ERROR",
    "f": "CRITICAL",
    "a": "CRITICAL",
}

# Syslog severities (RFC 5424 §6.2.1): 0 emerg .. 7 debug.
_SYSLOG: Final[tuple[str, ...]] = (
    "CRITICAL",
    "CRITICAL",
    "CRITICAL",
    "ERROR",
    "WARNING",
    "INFO",
    "INFO",
    "DEBUG",
)
# Python's numeric levels; chosen over bunyan/pino numbers (which would read 20 as DEBUG)
# because Python is what most of our clients' services emit.
_PYTHON_NUMERIC: Final[dict[int, str]] = {
    10: "DEBUG",
    20: "INFO",
    30: "WARNING",
    40: "ERROR",
    50: "CRITICAL",
}
_STRIP: Final[str] = " \t[]()<>:|-"


def normalise_level(value: object) -> str | None:
    """Map a level name, letter or number to a DESIGN level; None when unrecognised.

    Numbers 0-7 are syslog severities and 10/20/30/40/50 Python's levels; OpenTelemetry
    severity numbers (1-24) overlap with syslog, so they have their own function.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _from_number(value)
    if isinstance(value, float):
        return _from_number(int(value)) if value.is_integer() else None
    if not isinstance(value, str):
        return None
    text = value.strip(_STRIP)
    if not text:
        return None
    found = _NAMES.get(text.lower())
    if found is not None:
        return found
    if text.isdigit() and len(text) <= 3:
        return _from_number(int(text))
    return None


def _from_number(number: int) -> str | None:
    if 0 <= number < len(_SYSLOG):
        return _SYSLOG[number]
    return _PYTHON_NUMERIC.get(number)


def normalise_otel_severity(number: object) -> str | None:
    """Map an OpenTelemetry SeverityNumber (1-24) to a DESIGN level; None when out of range."""
    if isinstance(number, bool):
        return None
    if isinstance(number, str) and number.strip().isdigit():
        number = int(number.strip())
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or not 1 <= number <= 24:
        return None
    if number <= 8:  # TRACE 1-4, DEBUG 5-8
        return "DEBUG"
    if number <= 12:
        return "INFO"
    if number <= 16:
        return "WARNING"
    if number <= 20:
        return "ERROR"
    return "CRITICAL"  # FATAL 21-24
