"""Query language: parser (every construct, errors, limits), printer round-trip, resolve_time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.models import KEYWORD_FIELDS, LEVELS
from shared.querylang import (
    And,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    QuerySyntaxError,
    Range,
    Term,
    parse,
    resolve_time,
    to_text,
)


def M(value: str) -> Term:
    """A bare word on message."""
    return Term("message", value)


PARSE_CASES: list[tuple[str, Node]] = [
    # empty
    ("", MatchAll()),
    ("   \t\n ", MatchAll()),
    # bare words and phrases
    ("timeout", M("timeout")),
    ("Timeout", M("Timeout")),
    ("connection refused", And((M("connection"), M("refused")))),
    ('"connection refused"', Phrase("message", "connection refused")),
    ('""', Phrase("message", "")),
    ("héllo 日本", And((M("héllo"), M("日本")))),
    ("foo-bar", M("foo-bar")),
    ("a.b/c?d", M("a.b/c?d")),
    # field:value
    ("service:api", Term("service", "api")),
    # Lucene and Kibana users write a space after the colon or the operator.
    ("service: api", Term("service", "api")),
    ("status_code:5xx", Range("status_code", "500", "599", True, True)),
    ("status_code:4XX", Range("status_code", "400", "499", True, True)),
    ("status_code:>= 500", Range("status_code", "500", None, True, True)),
    ("SERVICE:Api", Term("service", "Api")),
    ("message:foo", M("foo")),
    ("message:foo:bar", M("foo:bar")),
    ('service:"my api"', Phrase("service", "my api")),
    ("endpoint:/api/users", Term("endpoint", "/api/users")),
    ("client_ip:::1", Term("client_ip", "::1")),
    ("status_code:500", Term("status_code", "500")),
    ('status_code:"500"', Term("status_code", "500")),
    ("response_time_ms:12.5", Term("response_time_ms", "12.5")),
    ("response_time_ms:1e3", Term("response_time_ms", "1e3")),
    ("timestamp:2024-01-01T10:00:00Z", Term("timestamp", "2024-01-01T10:00:00Z")),
    ('timestamp:"2024-01-01 10:00:00"', Term("timestamp", "2024-01-01 10:00:00")),
    # level normalisation and aliases
    ("level:error", Term("level", "ERROR")),
    ("LEVEL:Info", Term("level", "INFO")),
    ("level:warn", Term("level", "WARNING")),
    ("level:err", Term("level", "ERROR")),
    ("level:fatal", Term("level", "CRITICAL")),
    ("level:crit", Term("level", "CRITICAL")),
    ('level:"debug"', Phrase("level", "DEBUG")),
    ("level:err*", Prefix("level", "ERR")),
    # level ranges expand to the levels they cover, in severity order
    ("level:>=warn", Or((Term("level", "WARNING"), Term("level", "ERROR"), Term("level", "CRITICAL")))),
    ("level:>error", Term("level", "CRITICAL")),
    ("level:<INFO", Term("level", "DEBUG")),
    ("level:[info TO warning}", Term("level", "INFO")),
    ("level:>=error OR x", Or((Term("level", "ERROR"), Term("level", "CRITICAL"), M("x")))),
    # comparisons: open-ended ranges (open end's include flag normalised to True)
    ("status_code:>=500", Range("status_code", "500", None, True, True)),
    ("status_code:>500", Range("status_code", "500", None, False, True)),
    ("status_code:<=499", Range("status_code", None, "499", True, True)),
    ("status_code:<400", Range("status_code", None, "400", True, False)),
    ("response_time_ms:>-0.5", Range("response_time_ms", "-0.5", None, False, True)),
    ('service:>"a b"', Range("service", "a b", None, False, True)),
    ("timestamp:>=2024-01-01T10:00:00Z", Range("timestamp", "2024-01-01T10:00:00Z", None)),
    ("timestamp:>now-15m", Range("timestamp", "now-15m", None, False, True)),
    ("timestamp:<1700000000000", Range("timestamp", None, "1700000000000", True, False)),
    # bracket ranges
    ("status_code:[100 TO 200]", Range("status_code", "100", "200", True, True)),
    ("status_code:{100 TO 200}", Range("status_code", "100", "200", False, False)),
    ("status_code:[100 TO 200}", Range("status_code", "100", "200", True, False)),
    ("status_code:{100 TO 200]", Range("status_code", "100", "200", False, True)),
    ("status_code:[  100   TO   200  ]", Range("status_code", "100", "200", True, True)),
    ("status_code:[* TO 200}", Range("status_code", None, "200", True, False)),
    ("status_code:{100 TO *}", Range("status_code", "100", None, False, True)),
    ("status_code:{* TO *}", Range("status_code", None, None, True, True)),
    ("timestamp:[now-7d TO now]", Range("timestamp", "now-7d", "now")),
    ("timestamp:[now-2h TO 2024-01-01T10:00:00.123Z]", Range("timestamp", "now-2h", "2024-01-01T10:00:00.123Z")),
    ('service:["*" TO "TO"]', Range("service", "*", "TO")),
    ("service:[a\\]b TO c]", Range("service", "a]b", "c")),
    ("(status_code:[1 TO 2])", Range("status_code", "1", "2")),
    # prefixes
    ("endpoint:/api/users*", Prefix("endpoint", "/api/users")),
    ("conn*", Prefix("message", "conn")),
    ("message:conn*", Prefix("message", "conn")),
    ("attrs.db:pg*", Prefix("attrs.db", "pg")),
    ("(conn*)", Prefix("message", "conn")),
    ("foo\\*", M("foo*")),
    ("\\*", M("*")),
    # attrs
    ("attrs.region:eu-west-1", Term("attrs.region", "eu-west-1")),
    ("attrs.http.Status-Code_2:x", Term("attrs.http.Status-Code_2", "x")),
    ("ATTRS.Region:x", Term("attrs.Region", "x")),
    ('attrs.k:"a b"', Phrase("attrs.k", "a b")),
    ("attrs.url:http://x.io/a?b=c", Term("attrs.url", "http://x.io/a?b=c")),
    # boolean operators and precedence NOT > AND > OR
    ("a AND b", And((M("a"), M("b")))),
    ("a && b", And((M("a"), M("b")))),
    ("a OR b", Or((M("a"), M("b")))),
    ("a || b", Or((M("a"), M("b")))),
    ("NOT a", Not(M("a"))),
    ("!a", Not(M("a"))),
    ("! a", Not(M("a"))),
    ("-a", Not(M("a"))),
    ("-level:error", Not(Term("level", "ERROR"))),
    ('-"a b"', Not(Phrase("message", "a b"))),
    ("-(a OR b)", Not(Or((M("a"), M("b"))))),
    ("NOT NOT a", Not(Not(M("a")))),
    ("+a", M("a")),
    ("+a +b", And((M("a"), M("b")))),
    ("++a", M("a")),
    ("+-a", Not(M("a"))),
    ("a b OR c", Or((And((M("a"), M("b"))), M("c")))),
    ("a OR b c", Or((M("a"), And((M("b"), M("c")))))),
    ("a OR b AND c", Or((M("a"), And((M("b"), M("c")))))),
    ("NOT a b", And((Not(M("a")), M("b")))),
    ("NOT a OR b", Or((Not(M("a")), M("b")))),
    ("a NOT b", And((M("a"), Not(M("b"))))),
    ("a -b", And((M("a"), Not(M("b"))))),
    ("(a OR b) c", And((Or((M("a"), M("b"))), M("c")))),
    ("a(b)", And((M("a"), M("b")))),
    # flattening and collapsing
    ("a AND (b AND c)", And((M("a"), M("b"), M("c")))),
    ("(a b) (c d)", And((M("a"), M("b"), M("c"), M("d")))),
    ("a OR (b OR c) OR d", Or((M("a"), M("b"), M("c"), M("d")))),
    ("((a))", M("a")),
    ("(((a OR b)))", Or((M("a"), M("b")))),
    # keywords are case-sensitive; lowercase ones are words
    ("a and b", And((M("a"), M("and"), M("b")))),
    ("a or not b", And((M("a"), M("or"), M("not"), M("b")))),
    ("ANDROID", M("ANDROID")),
    ("\\AND", M("AND")),
    ("a&&b", M("a&&b")),
    # escapes
    ("foo\\:bar", M("foo:bar")),
    ("a\\ b", M("a b")),
    ("\\-a", M("-a")),
    ("\\(x\\)", M("(x)")),
    ('"say \\"hi\\""', Phrase("message", 'say "hi"')),
    ('"back\\\\slash"', Phrase("message", "back\\slash")),
    ('"a:b (c) AND d*"', Phrase("message", "a:b (c) AND d*")),
    ('service:"x\\"y"', Phrase("service", 'x"y')),
    ("endpoint:/a\\ b", Term("endpoint", "/a b")),
    # mixed real-world queries
    (
        "level:error service:api -endpoint:/health* status_code:>=500",
        And(
            (
                Term("level", "ERROR"),
                Term("service", "api"),
                Not(Prefix("endpoint", "/health")),
                Range("status_code", "500", None),
            )
        ),
    ),
    (
        '(level:error OR level:critical) AND "db timeout" AND attrs.db:pg*',
        And(
            (
                Or((Term("level", "ERROR"), Term("level", "CRITICAL"))),
                Phrase("message", "db timeout"),
                Prefix("attrs.db", "pg"),
            )
        ),
    ),
]


@pytest.mark.parametrize(("query", "expected"), PARSE_CASES, ids=[q or "<empty>" for q, _ in PARSE_CASES])
def test_parse_produces_exact_tree(query: str, expected: Node) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(("query", "expected"), PARSE_CASES, ids=[q or "<empty>" for q, _ in PARSE_CASES])
def test_printed_tree_parses_back_to_itself(query: str, expected: Node) -> None:
    assert parse(to_text(expected)) == expected


ERROR_CASES: list[tuple[str, int, str]] = [
    # (query, position, expected)
    ("a AND", 5, "a term after 'AND'"),
    ("a OR", 4, "a term after 'OR'"),
    ("AND a", 0, "a term"),
    ("a OR OR b", 5, "a term after 'OR'"),
    ("NOT", 3, "a term after 'NOT'"),
    ("()", 1, "a term after '('"),
    ("(a", 2, "')'"),
    ("((a) b", 6, "')'"),
    ("a)", 1, "a term, an operator or the end of the query"),
    ("a - b", 3, "a term right after '-'"),
    ("a -", 3, "a term right after '-'"),
    ("+ a", 1, "a term right after '+'"),
    ("-)", 1, "a term right after '-'"),
    ('"abc', 0, "a closing '\"'"),
    ('x "abc', 2, "a closing '\"'"),
    ('"abc\\"', 0, "a closing '\"'"),
    ('"a"b', 3, "whitespace after '\"'"),
    ('ab"c"', 2, "whitespace before '\"' or an escaped '\\\"'"),
    ("abc\\", 3, "a character after '\\'"),
    ("*", 0, "at least one character before '*'"),
    ("endpoint:*", 9, "at least one character before '*'"),
    ("a*b", 1, "whitespace after '*'"),
    ("*ab", 0, "whitespace after '*'"),
    # fields
    ("foo:bar", 0, "a known field name"),
    ("x AND bogus:1", 6, "a known field name"),
    ("http://example.com", 0, "a known field name"),
    (":x", 0, "a field name before ':'"),
    ("attrs.:x", 6, "an attribute key of letters, digits, '_', '.' or '-'"),
    ("attrs.a/b:x", 6, "an attribute key of letters, digits, '_', '.' or '-'"),
    ("service:", 8, "a value after ':'"),
    ("service:   ", 11, "a value after ':'"),
    ("(service:)", 9, "a value after ':'"),
    ("service:(a OR b)", 8, "a value after ':'"),
    # values that do not fit the field type
    ("status_code:abc", 12, "an integer"),
    ("status_code:5.5", 12, "an integer"),
    ("status_code:-1", 12, "an integer"),
    ("status_code:+1", 12, "an integer"),
    ("status_code:[0 TO 1234567890123456789]", 18, "an integer"),
    ("status_code:>=5x", 14, "an integer"),
    ("response_time_ms:fast", 17, "a number"),
    ("response_time_ms:nan", 17, "a number"),
    ("response_time_ms:[a TO b]", 18, "a number"),
    ("response_time_ms:[1 TO b]", 23, "a number"),
    ("level:verbose", 6, "a log level"),
    ("level:>=loud", 8, "a log level"),
    ("level:>critical", 6, "a range covering at least one level"),
    ("timestamp:yesterday", 10, "an ISO 8601 time, epoch milliseconds or now[+-]<n><s|m|h|d|w>"),
    ("timestamp:>now-15x", 11, "an ISO 8601 time, epoch milliseconds or now[+-]<n><s|m|h|d|w>"),
    ("timestamp:[now-1d TO later]", 21, "an ISO 8601 time, epoch milliseconds or now[+-]<n><s|m|h|d|w>"),
    # prefix and range where they make no sense
    ("status_code:5*", 12, "a value without '*'"),
    ("response_time_ms:1*", 17, "a value without '*'"),
    ("timestamp:2024*", 10, "a value without '*'"),
    ("message:[a TO b]", 8, 'a word, a "phrase" or word*'),
    ("message:>a", 8, 'a word, a "phrase" or word*'),
    # comparison syntax
    ("status_code:>=", 14, "a value after '>='"),
    ("status_code:>   ", 16, "a value after '>'"),
    ("status_code:<)", 13, "a value after '<'"),
    ("service:>a*", 10, "a value without '*'"),
    # range syntax
    ("status_code:[1 TO 2", 19, "']' or '}'"),
    ("status_code:[1 2]", 15, "'TO'"),
    ("status_code:[1 to 2]", 15, "'TO'"),
    ("status_code:[1 TO]", 17, "a value or '*' after 'TO'"),
    ("status_code:[TO 2]", 13, "a value or '*' before 'TO'"),
    ("status_code:[]", 13, "a value or '*'"),
    ("status_code:[1 TO 2]x", 20, "whitespace after the range"),
    ("service:[a* TO b]", 10, "a value or '*'"),
    ("service:[a TO", 13, "a value or '*' after 'TO'"),
]


@pytest.mark.parametrize(("query", "position", "expected"), ERROR_CASES, ids=[q for q, _, _ in ERROR_CASES])
def test_syntax_errors_name_position_and_expectation(query: str, position: int, expected: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse(query)
    assert (info.value.position, info.value.expected) == (position, expected)
    assert 0 <= info.value.position <= len(query)


def test_unknown_field_message_lists_allowed_fields() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse("hots:web-1")
    message = info.value.message
    assert "'hots'" in message
    for field in ("level", "service", "status_code", "timestamp", "message", "attrs.<key>"):
        assert field in message


def test_error_to_dict_and_str() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse("status_code:abc")
    error = info.value
    assert error.to_dict() == {
        "message": "status_code needs a non-negative integer, got 'abc'",
        "position": 12,
        "expected": "an integer",
    }
    assert str(error) == "status_code needs a non-negative integer, got 'abc' at position 12 (expected an integer)"
    assert isinstance(error, ValueError)


# -- limits ---------------------------------------------------------------------------------------


def test_max_length_error_points_at_the_limit() -> None:
    assert parse("a" * 4096) == M("a" * 4096)
    with pytest.raises(QuerySyntaxError) as info:
        parse("a" * 4097)
    assert info.value.position == 4096
    assert info.value.expected == "at most 4096 characters"
    with pytest.raises(QuerySyntaxError) as small:
        parse("abcdef", max_length=5)
    assert small.value.position == 5


def test_max_terms_counts_leaves() -> None:
    assert parse(" ".join(["w"] * 256)) == And(tuple([M("w")] * 256))
    with pytest.raises(QuerySyntaxError) as info:
        parse(" ".join(["w"] * 257))
    assert info.value.position == 2 * 256
    assert info.value.expected == "at most 256 terms"
    with pytest.raises(QuerySyntaxError) as small:
        parse("a b c", max_terms=2)
    assert small.value.position == 4


def test_level_range_expansion_counts_each_level() -> None:
    assert parse("level:>=error", max_terms=2) == Or((Term("level", "ERROR"), Term("level", "CRITICAL")))
    with pytest.raises(QuerySyntaxError) as info:
        parse("level:>=error", max_terms=1)
    assert info.value.expected == "at most 1 terms"


def test_max_depth_parentheses() -> None:
    assert parse("(" * 32 + "a" + ")" * 32) == M("a")
    with pytest.raises(QuerySyntaxError) as info:
        parse("(" * 33 + "a" + ")" * 33)
    assert info.value.position == 32
    assert info.value.expected == "at most 32 nested parentheses or NOTs"


def test_max_depth_not_chains() -> None:
    node = parse("NOT " * 32 + "a")
    for _ in range(32):
        assert isinstance(node, Not)
        node = node.child
    assert node == M("a")
    with pytest.raises(QuerySyntaxError) as info:
        parse("-" * 33 + "a")
    assert info.value.position == 32
    with pytest.raises(QuerySyntaxError) as mixed:
        parse("(NOT (NOT a))", max_depth=3)
    assert mixed.value.position == 6  # the second NOT is the fourth level


def test_max_depth_out_of_range_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        parse("a", max_depth=10_000)


@pytest.mark.parametrize(
    "query",
    ["(" * 5000, "(" * 4000, "NOT " * 1000, "-" * 4000 + "a", "!" * 4000, "(a " * 1300],
)
def test_pathological_nesting_raises_query_syntax_error(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse(query)


def test_plus_chains_do_not_recurse() -> None:
    assert parse("+" * 4000 + "a") == M("a")


# -- printer ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "text"),
    [
        (MatchAll(), ""),
        (M("error"), "error"),
        (M("AND"), "\\AND"),
        (M("-x"), "\\-x"),
        (M("a:b c"), "a\\:b\\ c"),
        (M("*"), "\\*"),
        (Term("service", "a:b"), "service:a:b"),
        (Term("service", "-x"), "service:\\-x"),
        (Term("service", "AND"), "service:AND"),
        (Phrase("message", 'say "hi"'), '"say \\"hi\\""'),
        (Phrase("service", "a b"), 'service:"a b"'),
        (Prefix("endpoint", "/api/users"), "endpoint:/api/users*"),
        (Prefix("message", "conn"), "conn*"),
        (Range("status_code", "500", None), "status_code:>=500"),
        (Range("status_code", None, "500", True, False), "status_code:<500"),
        (Range("status_code", "1", "2", False, True), "status_code:{1 TO 2]"),
        (Range("status_code", None, None), "status_code:[* TO *]"),
        (Range("service", "TO", "*"), 'service:["TO" TO "*"]'),
        (Range("service", "=x", None, False, True), 'service:>"=x"'),
        (Term("timestamp", "2024-01-01 10:00:00"), 'timestamp:"2024-01-01 10:00:00"'),
        (Or((M("a"), And((M("b"), M("c"))))), "a OR b c"),
        (And((M("a"), Or((M("b"), M("c"))))), "a (b OR c)"),
        (Not(And((M("a"), M("b")))), "NOT (a b)"),
        (Not(Not(M("a"))), "NOT NOT a"),
        (And((Not(M("a")), M("b"))), "NOT a b"),
        (Or((Term("level", "ERROR"), Term("level", "CRITICAL"))), "level:ERROR OR level:CRITICAL"),
    ],
)
def test_printer_output(tree: Node, text: str) -> None:
    assert to_text(tree) == text
    assert parse(text) == tree


@pytest.mark.parametrize(
    "tree",
    [
        And((MatchAll(), M("a"))),
        And(()),
        Term("nope", "x"),
        Term("attrs.a b", "x"),
        M(""),
        Prefix("service", ""),
    ],
)
def test_printer_rejects_trees_no_query_can_express(tree: Node) -> None:
    with pytest.raises(ValueError):
        to_text(tree)


# -- resolve_time -------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 4, 5, 6, 7, 890_000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-01T10:00:00Z", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00:00", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T12:00:00+02:00", datetime(2024, 1, 1, 10, tzinfo=UTC)),
        ("2024-01-01T10:00:00.123456Z", datetime(2024, 1, 1, 10, 0, 0, 123_000, tzinfo=UTC)),
        ("2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
        ("1700000000123", datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)),
        ("0", datetime(1970, 1, 1, tzinfo=UTC)),
        ("now", NOW),
        (" now ", NOW),
        ("now-30s", NOW - timedelta(seconds=30)),
        ("now-15m", NOW - timedelta(minutes=15)),
        ("now-1h", NOW - timedelta(hours=1)),
        ("now-7d", NOW - timedelta(days=7)),
        ("now+1d", NOW + timedelta(days=1)),
        ("now-2w", NOW - timedelta(weeks=2)),
    ],
)
def test_resolve_time(value: str, expected: datetime) -> None:
    result = resolve_time(value, now=NOW)
    assert result == expected
    assert result.tzinfo is not None and result.utcoffset() == timedelta(0)


def test_resolve_time_now_defaults_to_current_utc() -> None:
    before = datetime.now(UTC) - timedelta(minutes=15, seconds=1)
    result = resolve_time("now-15m")
    assert before <= result <= datetime.now(UTC) - timedelta(minutes=15) + timedelta(seconds=1)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "  ",
        "yesterday",
        "now-",
        "now-5",
        "now-5y",
        "now - 5m",
        "-1000",
        "1.5",
        "2024-13-01",
        "9" * 30,
        "now-9999999999w",
    ],
)
def test_resolve_time_rejects_with_clear_message(value: str) -> None:
    with pytest.raises(ValueError, match="time"):
        resolve_time(value)


# -- property tests ---------------------------------------------------------------------------------

_FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_SPECIALS = list(' \t\n:"\\*()[]{}<>=-+!&|~?/.,TOANDOR日é\x00\x1f')
_text = st.text(alphabet=st.sampled_from(_SPECIALS) | st.characters(), max_size=16)
_nonempty = st.text(alphabet=st.sampled_from(_SPECIALS) | st.characters(), min_size=1, max_size=16)
_attr_field = st.from_regex(r"[A-Za-z0-9_.\-]{1,10}", fullmatch=True).map(lambda key: "attrs." + key)
_keyword_field = st.sampled_from([f for f in KEYWORD_FIELDS if f != "level"]) | _attr_field
_ints = st.integers(0, 10**18 - 1).map(str)
_floats = st.floats(allow_nan=False, allow_infinity=False).map(repr)
_times = st.sampled_from(
    ["now", "now-15m", "now+1d", "now-30s", "2024-01-01T10:00:00Z", "2024-01-01 10:00:00", "1700000000000"]
) | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat())


def _range(field: str, lower: str | None, upper: str | None, inc_lower: bool, inc_upper: bool) -> Range:
    # Same normalisation as the parser: an open end is always "inclusive".
    return Range(field, lower, upper, inc_lower or lower is None, inc_upper or upper is None)


def _ranges(field: st.SearchStrategy[str], bound: st.SearchStrategy[str]) -> st.SearchStrategy[Node]:
    return st.builds(_range, field, st.none() | bound, st.none() | bound, st.booleans(), st.booleans())


_leaves: st.SearchStrategy[Node] = st.one_of(
    st.builds(Term, st.just("message"), _nonempty),
    st.builds(Phrase, st.just("message"), _text),
    st.builds(Prefix, st.just("message"), _nonempty),
    st.builds(Term, _keyword_field, _nonempty),
    st.builds(Phrase, _keyword_field, _text),
    st.builds(Prefix, _keyword_field, _nonempty),
    _ranges(_keyword_field, _text),
    st.builds(Term, st.just("level"), st.sampled_from(LEVELS)),
    st.builds(Phrase, st.just("level"), st.sampled_from(LEVELS)),
    st.builds(Prefix, st.just("level"), st.sampled_from(["D", "INF", "WARN", "ERR", "C"])),
    st.builds(Term, st.just("status_code"), _ints),
    _ranges(st.just("status_code"), _ints),
    st.builds(Term, st.just("response_time_ms"), _floats),
    _ranges(st.just("response_time_ms"), _floats),
    st.builds(Term, st.just("timestamp"), _times),
    _ranges(st.just("timestamp"), _times),
)


def _flat(kind: type[And] | type[Or], children: list[Node]) -> Node:
    # Mirror the parser: nested And/And and Or/Or are flattened.
    flat: list[Node] = []
    for child in children:
        flat.extend(child.children if isinstance(child, kind) else (child,))
    return kind(tuple(flat))


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    many = st.lists(children, min_size=2, max_size=4)
    return st.one_of(
        st.builds(Not, children),
        many.map(lambda kids: _flat(And, kids)),
        many.map(lambda kids: _flat(Or, kids)),
    )


trees = st.recursive(_leaves, _extend, max_leaves=12)


@_FAST
@given(trees)
def test_roundtrip_generated_trees(tree: Node) -> None:
    text = to_text(tree)
    assert parse(text) == tree, text


_query_soup = st.lists(
    st.sampled_from(
        [
            "(",
            ")",
            " ",
            "a",
            "Err",
            "NOT ",
            "AND ",
            "OR ",
            "-",
            "+",
            "!",
            "&&",
            "||",
            '"',
            "\\",
            "*",
            ":",
            "level:",
            "status_code:",
            "timestamp:",
            "attrs.k:",
            "message:",
            "[",
            "]",
            "{",
            "}",
            " TO ",
            ">=",
            "<",
            "now-5m",
            "500",
            "é",
            "\x00",
            "\n",
        ]
    ),
    max_size=30,
).map("".join)


@_FAST
@given(st.text(max_size=200) | _query_soup)
def test_parse_only_returns_a_tree_or_raises_query_syntax_error(text: str) -> None:
    try:
        tree = parse(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)
        assert error.message and error.expected
        return
    assert isinstance(tree, (MatchAll, Term, Phrase, Prefix, Range, Not, And, Or))
    # Whatever parses also prints and re-parses to the same tree.
    assert parse(to_text(tree)) == tree


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 4090), st.sampled_from(["(", "NOT ", "-", "!", "(-", "+"]))
def test_parse_survives_deep_prefixes(count: int, unit: str) -> None:
    text = (unit * count)[:4095] + "a"
    try:
        parse(text)
    except QuerySyntaxError as error:
        assert 0 <= error.position <= len(text)
