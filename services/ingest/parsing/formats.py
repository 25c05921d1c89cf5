"""Line formats: one parser per layout, returning a record dict for ``normalise``.

Text layouts mirror the Loghub reference formats (lazy component up to the first ": ",
content = the rest of the stripped line) so their ``Content`` column is our ``message``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from .limits import RecordError
from .normalise import ALIASES
from .timestamps import TIMESTAMP_PREFIX

_LEVEL: Final[str] = (
    r"(TRACE|DEBUG|INFO|NOTICE|WARN|WARNING|ERROR|ERR|SEVERE|FATAL|CRITICAL|CRIT|ALERT|EMERG|EMERGENCY"
    r"|VERBOSE|FINEST|FINER|FINE|CONFIG)"
)
_ISO_TS: Final[str] = r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"

Record = dict[str, Any]
LineParser = Callable[[str], Record | None]

# --- access logs ---------------------------------------------------------------------------
_QUOTED: Final[str] = r'"((?:[^"\\]|\\.)*)"'
_ACCESS_RE: Final[re.Pattern[str]] = re.compile(
    rf"(\S+) (\S+) (\S+) \[([^\]]+)\] {_QUOTED} (\d{{3}}|-) (\d+|-)(?: {_QUOTED} {_QUOTED})?(.*)"
)
_NUMBER_RE: Final[re.Pattern[str]] = re.compile(r"\d+(?:\.\d+)?")


def _parse_access(line: str) -> Record | None:
    m = _ACCESS_RE.fullmatch(line)
    if m is None:
        return None
    ip, ident, user, ts, request, status, size, referer, agent, extra = m.groups()
    record: Record = {"client_ip": ip, "timestamp": ts, "message": request}
    parts = request.split(" ")
    if len(parts) == 3:
        record["method"] = parts[0]
        path, _, query = parts[1].partition("?")
        # The query string goes to attrs: endpoints are grouped in stats, so they must stay few.
        record["endpoint"] = path
        if query:
            record["query"] = query
        record["protocol"] = parts[2]
    if ident != "-":
        record["ident"] = ident
    if user != "-":
        record["user_id"] = user
    if status != "-":
        record["status_code"] = status
    if size != "-":
        record["bytes"] = size
    if referer not in (None, "-"):
        record["referer"] = referer
    if agent not in (None, "-"):
        record["user_agent"] = agent
    extra = extra.strip()
    if extra:
        if _NUMBER_RE.fullmatch(extra):
            # A bare trailing number is nginx's customary $request_time, in seconds.
            record["response_time_ms"] = round(float(extra) * 1000, 3)
        else:
            record["extra"] = extra
    return record


# --- Apache error log ------------------------------------------------------------------------
_APACHE_ERROR_RE: Final[re.Pattern[str]] = re.compile(r"\[([^\]]+)\]\s+\[(?:([\w\-]+):)?(\w+)\]\s*(.*)")
_APACHE_PID_RE: Final[re.Pattern[str]] = re.compile(r"\[pid (\d+)(?::tid (\d+))?\]")
_APACHE_CLIENT_RE: Final[re.Pattern[str]] = re.compile(r"\[client ([^\]\s]+?)(?::\d+)?\]")


def _parse_apache_error(line: str) -> Record | None:
    m = _APACHE_ERROR_RE.fullmatch(line)
    if m is None:
        return None
    ts, module, level, message = m.groups()
    # The message keeps its [pid]/[client] prefixes (searchable, and Loghub's Content does too).
    record: Record = {"timestamp": ts, "level": level, "message": message}
    if module:
        record["module"] = module
    if (pid := _APACHE_PID_RE.search(message)) is not None:
        record["pid"] = pid.group(1)
        if pid.group(2):
            record["tid"] = pid.group(2)
    if (client := _APACHE_CLIENT_RE.search(message)) is not None:
        record["client_ip"] = client.group(1)
    return record


# --- syslog ------------------------------------------------------------------------------------
_SYSLOG_TS: Final[str] = r"[A-Z][a-z]{2}\s+\d{1,2}\s+\d{2}:\d{2}:\d{2}(?:\.\d+)?|\d{4}-\d{2}-\d{2}T\S+"
_RFC3164_RE: Final[re.Pattern[str]] = re.compile(
    rf"(?:<(\d{{1,3}})>)?({_SYSLOG_TS})\s+(\S+)\s+(.*?)(?:\[(\d+)\])?:(?:\s+(.*))?"
)
_RFC3164_BARE_RE: Final[re.Pattern[str]] = re.compile(rf"(?:<(\d{{1,3}})>)?({_SYSLOG_TS})\s+(\S+)\s+(.*)")
_RFC5424_RE: Final[re.Pattern[str]] = re.compile(
    r"<(\d{1,3})>(\d{1,2}) (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\\"]|\\.|\"(?:[^\"\\]|\\.)*\")*\])+)"
    r"(?: (.*))?"
)
_SD_ELEMENT_RE: Final[re.Pattern[str]] = re.compile(r"\[([^\s\]]+)((?:\s+[^\s=\]]+=\"(?:[^\"\\]|\\.)*\")*)\s*\]")
_SD_PARAM_RE: Final[re.Pattern[str]] = re.compile(r"([^\s=\]]+)=\"((?:[^\"\\]|\\.)*)\"")
_SD_UNESCAPE_RE: Final[re.Pattern[str]] = re.compile(r"\\([\"\\\]])")
_FACILITIES: Final[tuple[str, ...]] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv",
    "ftp", "ntp", "audit", "alert", "clock", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
)  # fmt: skip


def _pri(record: Record, pri: str | None) -> None:
    if pri is None:
        return
    value = int(pri)
    if value > 191:
        return
    record["level"] = value % 8  # syslog severity number, mapped by normalise_level
    record["facility"] = _FACILITIES[value // 8]


def _parse_rfc3164(line: str) -> Record | None:
    m = _RFC3164_RE.fullmatch(line)
    if m is not None:
        pri, ts, host, tag, pid, message = m.groups()
        record: Record = {"timestamp": ts, "server": host, "service": tag, "message": message or ""}
        if pid:
            record["pid"] = pid
    else:
        m = _RFC3164_BARE_RE.fullmatch(line)
        if m is None:
            return None
        pri, ts, host, message = m.groups()
        record = {"timestamp": ts, "server": host, "message": message}
    _pri(record, pri)
    return record


def _parse_rfc5424(line: str) -> Record | None:
    m = _RFC5424_RE.fullmatch(line)
    if m is None:
        return None
    pri, _version, ts, host, app, procid, msgid, sd, message = m.groups()
    record: Record = {"message": (message or "").removeprefix("\ufeff")}
    if ts != "-":
        record["timestamp"] = ts
    if host != "-":
        record["server"] = host
    if app != "-":
        record["service"] = app
    if procid != "-":
        record["pid"] = procid
    if msgid != "-":
        record["msgid"] = msgid
    _pri(record, pri)
    if sd != "-":
        for element in _SD_ELEMENT_RE.finditer(sd):
            sd_id = element.group(1)
            for param in _SD_PARAM_RE.finditer(element.group(2)):
                record[f"sd.{sd_id}.{param.group(1)}"] = _SD_UNESCAPE_RE.sub(r"\1", param.group(2))
    return record


# --- logfmt ----------------------------------------------------------------------------------------
_LOGFMT_PAIR_RE: Final[re.Pattern[str]] = re.compile(r'\s*([^\s="]+)(?:=("(?:[^"\\]|\\.)*"|[^\s"]*))?')


def _parse_logfmt(line: str) -> Record | None:
    if line.count("=") < 2:
        return None
    record: Record = {}
    flags = 0
    pos = 0
    end = len(line)
    while pos < end:
        m = _LOGFMT_PAIR_RE.match(line, pos)
        if m is None or m.end() == pos:
            if line[pos:].strip():
                return None
            break
        key, value = m.groups()
        if value is None:
            record[key] = "true"  # a bare key is a flag
            flags += 1
        elif value.startswith('"'):
            try:
                record[key] = orjson.loads(value)
            except orjson.JSONDecodeError:
                record[key] = value[1:-1]
        else:
            record[key] = value
        pos = m.end()
    # Mostly bare words is prose that happens to contain "=", not logfmt.
    return record if len(record) - flags >= max(2, flags) else None


# --- JSON lines --------------------------------------------------------------------------------------
def _parse_ndjson(line: str) -> Record | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise RecordError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise RecordError("JSON value is not an object")
    return value


# --- application text layouts (Loghub systems and common frameworks) -------------------------------------
def _regex_parser(pattern: str, keys: tuple[str | None, ...]) -> LineParser:
    compiled = re.compile(pattern)

    def parse(line: str) -> Record | None:
        m = compiled.fullmatch(line)
        if m is None:
            return None
        record: Record = {}
        for key, value in zip(keys, m.groups(), strict=True):
            if key is not None and value is not None:
                record[key] = value
        record.setdefault("message", "")
        return record

    return parse


def _alternatives(*parsers: LineParser) -> LineParser:
    def parse(line: str) -> Record | None:
        for parser in parsers:
            record = parser(line)
            if record is not None:
                return record
        return None

    return parse


def _parse_zookeeper(line: str) -> Record | None:
    record = _zookeeper_base(line)
    if record is not None:
        # [thread:Class@line] -> service "Class", the full bracket kept as attrs.thread.
        thread = record["thread"]
        where = thread.rpartition(":")[2]
        cls, _, lineno = where.partition("@")
        if cls:
            record["service"] = cls
        if lineno:
            record["source_line"] = lineno
    return record


_zookeeper_base = _regex_parser(
    rf"({_ISO_TS})\s+-\s+{_LEVEL}\s+\[(.*?)\]\s+-\s+(.*)", ("timestamp", "level", "thread", "message")
)

_GENERIC_RE: Final[re.Pattern[str]] = re.compile(
    rf"(?:[\[(<]?(?i:{_LEVEL})[\])>]?:?(?:\s|$))?",
)


def parse_text_fallback(line: str) -> Record:
    """Record for a line no layout fits: the whole line as message, a leading timestamp if any."""
    record: Record = {"message": line}
    m = TIMESTAMP_PREFIX.match(line)
    if m is not None:
        record["timestamp"] = m.group(0)
        rest = line[m.end() :].lstrip(" -|")
        level = _GENERIC_RE.match(rest)
        if level is not None and level.group(1):
            record["level"] = level.group(1)
    return record


def _parse_text(line: str) -> Record | None:
    return parse_text_fallback(line)


LINE_PARSERS: Final[dict[str, LineParser]] = {
    "nginx_combined": _parse_access,
    "apache_combined": _parse_access,
    "common": _parse_access,
    "apache_error": _parse_apache_error,
    "syslog_5424": _parse_rfc5424,
    "syslog_3164": _parse_rfc3164,
    "logfmt": _parse_logfmt,
    "ndjson": _parse_ndjson,
    # 2024-01-01 12:00:00,123 INFO app.db: msg | 2024-01-01 12:00:00,123 - app.db - INFO - msg
    "python": _alternatives(
        _regex_parser(
            rf"({_ISO_TS})\s+{_LEVEL}\s+([^\s:\[\]]+):(?:\s+(.*))?", ("timestamp", "level", "service", "message")
        ),
        _regex_parser(
            rf"({_ISO_TS})\s+-\s+(\S+)\s+-\s+{_LEVEL}\s+-\s+(.*)", ("timestamp", "service", "level", "message")
        ),
    ),
    # logback/log4j "%d [%t] %-5p %c - %m" and Hadoop's "%d %p [%t] %c: %m"
    "log4j": _alternatives(
        _regex_parser(
            rf"({_ISO_TS})\s+\[(.*?)\]\s+{_LEVEL}\s+(\S+)\s+-\s(.*)",
            ("timestamp", "thread", "level", "service", "message"),
        ),
        _regex_parser(
            rf"({_ISO_TS})\s+{_LEVEL}\s+\[(.*?)\]\s+(.*?):(?:\s+(.*))?",
            ("timestamp", "level", "thread", "service", "message"),
        ),
    ),
    "zookeeper": _parse_zookeeper,
    # 17/06/09 20:10:40 INFO spark.SecurityManager: msg
    "spark": _regex_parser(
        r"(\d{2}/\d{2}/\d{2} \d{2}:\d{2}:\d{2})\s+([A-Z]+)\s+(.*?):(?:\s+(.*))?",
        ("timestamp", "level", "service", "message"),
    ),
    # 081109 203615 148 INFO dfs.DataNode$PacketResponder: msg
    "hdfs": _regex_parser(
        r"(\d{6} \d{6})\s+(\d+)\s+([A-Z]+)\s+(.*?):(?:\s+(.*))?",
        ("timestamp", "pid", "level", "service", "message"),
    ),
    # [file] 2017-05-16 00:00:00.008 25746 INFO nova.x.y [req-... ] msg (oslo.log)
    "openstack": _regex_parser(
        rf"(?:(\S+)\s+)?(\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}}(?:\.\d+)?)\s+(\d+)\s+{_LEVEL}\s+(\S+)"
        r"\s+(?:\[(.*?)\]\s+)?(.*)",
        ("logfile", "timestamp", "pid", "level", "service", "request", "message"),
    ),
    # 03-17 16:13:38.811  1702  2395 D WindowManager: msg (logcat threadtime)
    "android": _regex_parser(
        r"(\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d+)\s+(\d+)\s+(\d+)\s+([VDIWEFA])\s+(.*?):(?:\s+(.*))?",
        ("timestamp", "pid", "tid", "level", "service", "message"),
    ),
    # 20171223-22:15:29:606|Step_LSC|30002312|msg
    "healthapp": _regex_parser(
        r"(\d{8}-\d{1,2}:\d{1,2}:\d{1,2}:\d{1,3})\|(.*?)\|(.*?)\|(.*)", ("timestamp", "service", "pid", "message")
    ),
    "text": _parse_text,
}

# Text layouts whose events may span lines (stack traces): continuation lines are joined.
MULTILINE_FORMATS: Final[frozenset[str]] = frozenset(
    {"python", "log4j", "zookeeper", "spark", "hdfs", "openstack", "android", "healthapp", "apache_error", "text"}
)
FORMATS: Final[tuple[str, ...]] = ("json", "csv", *LINE_PARSERS)


def match_line(fmt: str, line: str) -> Record | None:
    """Record if ``line`` fits layout ``fmt``, else None (ndjson raises RecordError on bad JSON)."""
    parser = LINE_PARSERS.get(fmt)
    if parser is None:
        raise ValueError(f"unknown line format {fmt!r}")
    return parser(line.strip())


def parse_line(fmt: str, line: str) -> dict[str, Any]:
    """Parse one line of format ``fmt`` into a record for ``normalise``; unfit lines become plain text."""
    record = match_line(fmt, line)
    if record is None:
        return parse_text_fallback(line.strip())
    return record


# --- detection ------------------------------------------------------------------------------------------
# Tried in this order; the first with the best score wins ties, so specific layouts come first.
_DETECT_ORDER: Final[tuple[str, ...]] = (
    "syslog_5424",
    "nginx_combined",
    "apache_error",
    "healthapp",
    "android",
    "openstack",
    "zookeeper",
    "log4j",
    "python",
    "spark",
    "hdfs",
    "syslog_3164",
)
# "[2024-01-01 ..." starts many text logs; only "[1, 2" / "[true," is a JSON array of scalars.
_JSON_SCALAR_RE: Final[re.Pattern[str]] = re.compile(r"(?:-?\d+(?:\.\d+)?|true|false|null)\s*(?:,|\]|$)")
_IDENT_RE: Final[re.Pattern[str]] = re.compile(r"[A-Za-z_@][\w.@\-]*")
_KNOWN_COLUMNS: Final[frozenset[str]] = frozenset(
    {k.lower() for k in ALIASES} | {"log_type", "user_agent", "sql_query", "query_duration_ms"}
)


def _looks_csv(lines: list[str]) -> bool:
    try:
        rows = list(csv.reader(lines[:20]))
    except csv.Error:
        return False
    if not rows or len(rows[0]) < 2:
        return False
    header = [c.strip() for c in rows[0]]
    if not all(_IDENT_RE.fullmatch(c) for c in header):
        return False
    if not any(c.lower() in _KNOWN_COLUMNS for c in header):
        return False
    # Quoted newlines make some physical lines short, so only most rows need the header's width.
    widths = [len(r) for r in rows[1:] if r]
    return not widths or sum(w == len(header) for w in widths) >= len(widths) / 2


def detect_format(sample_lines: list[str]) -> str:
    """Guess the format of a file from its first lines (see FORMATS); "text" when nothing fits."""
    lines = [line.strip() for line in sample_lines if line.strip()]
    if not lines:
        return "text"
    first = lines[0]
    if first.startswith("["):
        rest = first[1:].lstrip() or (lines[1] if len(lines) > 1 else "")
        if not rest or rest[0] in '{["]' or _JSON_SCALAR_RE.match(rest):
            return "json"
    if first.startswith("{"):
        parsed = 0
        for line in lines[:20]:
            try:
                parsed += isinstance(orjson.loads(line), dict)
            except orjson.JSONDecodeError:
                pass
        if parsed == 0:
            return "json"  # one pretty-printed object, not one object per line
        return "ndjson"
    if _looks_csv(lines):
        return "csv"
    best, best_score = "text", 0
    for fmt in _DETECT_ORDER:
        parser = LINE_PARSERS[fmt]
        score = sum(parser(line) is not None for line in lines)
        if score > best_score:
            best, best_score = fmt, score
    if best == "nginx_combined":
        matches = (_ACCESS_RE.fullmatch(line) for line in lines)
        if not any(m is not None and m.group(8) is not None for m in matches):
            best = "common"  # no referer/user-agent pair anywhere: Common Log Format
    logfmt_score = sum(_parse_logfmt(line) is not None for line in lines)
    if logfmt_score > best_score and logfmt_score * 2 >= len(lines):
        return "logfmt"
    # A layout matching only a few lines is trusted for multi-line formats (the rest are
    # stack-trace continuations); the single-line formats need most lines to fit.
    if best in MULTILINE_FORMATS:
        continuation = sum(1 for line in sample_lines if line[:1] in (" ", "\t"))
        if best_score * 10 >= len(lines) or best_score + continuation >= len(lines) / 2:
            return best
        return "text"
    if best_score * 2 >= len(lines):
        return best
    return "text"
