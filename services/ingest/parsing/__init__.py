"""The pure parsing core of the ingest service: detect, parse, normalise, stream.

Synchronous and side-effect free; the service runs it in a worker thread.
"""

from .formats import FORMATS, LINE_PARSERS, MULTILINE_FORMATS, detect_format, parse_line
from .levels import normalise_level, normalise_otel_severity
from .limits import NotALogError, ParseLimits, RecordError
from .normalise import ALIASES, flatten, normalise, normalise_counted
from .records import (
    ParsedRecord,
    PayloadResult,
    RecordReader,
    RejectedRecord,
    iter_records,
    parse_payload,
    sniff_binary,
)
from .timestamps import from_epoch, parse_timestamp

__all__ = [
    "ALIASES",
    "FORMATS",
    "LINE_PARSERS",
    "MULTILINE_FORMATS",
    "NotALogError",
    "ParseLimits",
    "ParsedRecord",
    "PayloadResult",
    "RecordError",
    "RecordReader",
    "RejectedRecord",
    "detect_format",
    "flatten",
    "from_epoch",
    "iter_records",
    "normalise",
    "normalise_counted",
    "normalise_level",
    "normalise_otel_severity",
    "parse_line",
    "parse_payload",
    "parse_timestamp",
    "sniff_binary",
]
