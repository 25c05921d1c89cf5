"""In-memory matcher: the live tail's filter must agree with what the stores would return."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import tantivy
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.models import LogEvent, format_timestamp
from shared.querylang import (
    And,
    MatchAll,
    Node,
    Not,
    Or,
    Phrase,
    Prefix,
    Range,
    Term,
    compile_matcher,
    matches,
    parse,
    tokenize,
)

EVENT: dict[str, Any] = LogEvent(
    timestamp=datetime(2024, 5, 6, 7, 8, 9, 123_000, tzinfo=UTC),
    level="ERROR",
    service="billing-api",
    server="server-03",
    endpoint="/api/users/42",
    method="POST",
    status_code=503,
    response_time_ms=1250.5,
    user_id="u-17",
    message="Connection REFUSED to db-primary:5432 after 3 retries (Straße café)",
    source="http",
    attrs={"db.name": "orders", "region": "eu-west-1", "Mixed": "Case Value"},
).to_dict()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", True),
        # message: analysed, case-insensitive whole tokens
        ("connection", True),
        ("CONNECTION", True),
        ("connect", False),
        ("refused db", True),
        ("5432", True),
        ("primary", True),
        ("db-primary", True),  # several tokens in one word behave as a phrase
        ("primary-db", False),
        ("straße", True),
        ("CAFÉ", True),
        ('"refused to db"', True),
        ('"to refused"', False),
        ('"CONNECTION refused"', True),
        ('"3 retries"', True),
        ('"after retries"', False),
        ('"...:::"', False),
        ("conn*", True),
        ("REF*", True),
        ("onn*", False),
        ("message:retr*", True),
        ("message:refused", True),
        # keywords: exact
        ("service:billing-api", True),
        ("service:billing", False),
        ("service:Billing-api", False),
        ('service:"billing-api"', True),
        ("server:server-03", True),
        ("endpoint:/api/users*", True),
        ("endpoint:/api/orders*", False),
        ("endpoint:/api/users", False),
        ("method:POST", True),
        ("method:post", False),
        # level: normalised upper-case
        ("level:error", True),
        ("level:err", True),
        ("level:warn", False),
        ("level:>=warning", True),
        ("level:<error", False),
        ("level:E*", True),
        # numbers
        ("status_code:503", True),
        ('status_code:"503"', True),
        ("status_code:500", False),
        ("status_code:>=500", True),
        ("status_code:>503", False),
        ("status_code:[500 TO 503]", True),
        ("status_code:[500 TO 503}", False),
        ("status_code:{503 TO *]", False),
        ("status_code:[* TO *]", True),
        ("response_time_ms:1250.5", True),
        ("response_time_ms:1250.50", True),
        ("response_time_ms:>1000", True),
        ("response_time_ms:<1250.5", False),
        ("response_time_ms:<=1250.5", True),
        # timestamps (exact ms, inclusive/exclusive)
        ("timestamp:2024-05-06T07:08:09.123Z", True),
        ("timestamp:>=2024-05-06T07:08:09.123Z", True),
        ("timestamp:>2024-05-06T07:08:09.123Z", False),
        ("timestamp:[2024-05-06 TO 2024-05-07}", True),
        ("timestamp:{1714979289123 TO *}", False),
        ("timestamp:[1714979289123 TO *}", True),
        ("timestamp:>now-1d", False),
        ("timestamp:<now", True),
        # attrs
        ("attrs.db.name:orders", True),
        ("attrs.db.name:Orders", False),
        ("attrs.region:eu-*", True),
        ('attrs.Mixed:"Case Value"', True),
        ("attrs.region:[eu TO ev]", True),
        # boolean structure
        ("level:error AND service:billing-api", True),
        ("level:error AND service:other", False),
        ("level:info OR service:billing-api", True),
        ("NOT level:info", True),
        ("-connection", False),
        ("(timeout OR refused) -level:debug", True),
        # missing fields never match; NOT of them does
        ("tenant_id:acme", False),
        ("NOT tenant_id:acme", True),
        ("trace_id:a*", False),
        ("attrs.missing:x", False),
        ("-attrs.missing:x", True),
        ("span_id:[* TO *]", False),
    ],
)
def test_matches_sample_event(query: str, expected: bool) -> None:
    assert matches(parse(query), EVENT) is expected


def test_missing_numeric_and_time_fields_never_match() -> None:
    event = {"message": "hi", "level": "INFO"}
    for query in ("status_code:200", "status_code:>=0", "response_time_ms:<1e9", "timestamp:<now"):
        assert not matches(parse(query), event), query
        assert matches(parse(f"NOT {query}"), event), query


def test_relative_time_is_evaluated_per_call_not_at_compile_time() -> None:
    predicate = compile_matcher(parse("timestamp:>=now-15m"))
    now = datetime.now(UTC)
    fresh = {"timestamp": format_timestamp(now - timedelta(minutes=1))}
    stale = {"timestamp": format_timestamp(now - timedelta(minutes=16))}
    future = {"timestamp": format_timestamp(now + timedelta(hours=1))}
    assert predicate(fresh)
    assert not predicate(stale)
    assert predicate(future)
    assert compile_matcher(parse("timestamp:<now"))(fresh)
    assert not compile_matcher(parse("timestamp:<now"))(future)


def test_compiled_matcher_is_reusable_and_matches_wrapper() -> None:
    tree = parse("level:>=warning status_code:>=500 -endpoint:/health*")
    predicate = compile_matcher(tree)
    events = [
        {"level": "ERROR", "status_code": 500, "endpoint": "/api"},
        {"level": "WARNING", "status_code": 503},
        {"level": "INFO", "status_code": 500, "endpoint": "/api"},
        {"level": "CRITICAL", "status_code": 502, "endpoint": "/health/live"},
        {"level": "ERROR", "status_code": 404},
    ]
    results = [predicate(e) for e in events]
    assert results == [True, True, False, False, False]
    assert results == [matches(tree, e) for e in events]


def test_level_compares_upper_case_on_the_event_side() -> None:
    assert matches(parse("level:warning"), {"level": "warning"})
    assert matches(Term("level", "ERROR"), {"level": "Error"})


def test_numbers_compare_numerically_across_int_and_float() -> None:
    assert matches(parse("status_code:500"), {"status_code": 500})
    assert matches(parse("status_code:0500"), {"status_code": 500})
    assert matches(parse("response_time_ms:12"), {"response_time_ms": 12.0})
    assert not matches(parse("status_code:>99"), {"status_code": 100.0 - 1})


def test_datetime_objects_and_naive_strings_are_accepted() -> None:
    tree = parse("timestamp:[2024-01-01T00:00:00Z TO 2024-01-02T00:00:00Z}")
    assert matches(tree, {"timestamp": datetime(2024, 1, 1, 12, tzinfo=UTC)})
    assert matches(tree, {"timestamp": "2024-01-01T12:00:00"})
    assert not matches(tree, {"timestamp": "2024-01-02T00:00:00.000Z"})
    assert not matches(tree, {"timestamp": "garbage"})


def test_match_all_and_hand_built_trees() -> None:
    assert matches(MatchAll(), {})
    assert matches(Or((Term("service", "x"), Not(Term("service", "y")))), {"service": "z"})
    assert not matches(And((Term("service", "z"), Phrase("message", "hello world"))), {"service": "z"})
    assert matches(Phrase("status_code", "7"), {"status_code": 7})


@pytest.mark.parametrize(
    "tree",
    [
        Term("nope", "x"),
        Range("message", "a", "b"),
        Prefix("status_code", "5"),
        Term("status_code", "abc"),
        Range("timestamp", "whenever", None),
    ],
)
def test_compile_rejects_trees_the_parser_never_makes(tree: Node) -> None:
    with pytest.raises(ValueError):
        compile_matcher(tree)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Hello, World!", ["hello", "world"]),
        ("snake_case-and.dots", ["snake", "case", "and", "dots"]),
        ("ÉCOLE 東京 x²", ["école", "東京", "x²"]),
        ("İstanbul", ["i̇stanbul"]),
        ("", []),
        ("--- ...", []),
    ],
)
def test_tokenize_like_tantivy_default(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens


_tricky = st.text(
    alphabet=st.sampled_from(list("aZ9 _-.İΣσςกิ\u0301\u200bⅫ²ǅﬁ東")) | st.characters(), max_size=40
) | st.builds(lambda n, tail: "x" * n + tail, st.integers(250, 260), st.text(max_size=4))


@settings(max_examples=200, deadline=None)
@given(_tricky)
def test_tokenize_equals_the_store_analyser(text: str) -> None:
    assert tokenize(text) == _ref_tokens(text)


def test_lone_surrogates_do_not_break_matching() -> None:
    event = {"message": "bad\ud800byte here"}
    assert matches(parse("bad"), event)
    assert matches(parse('"byte here"'), event)
    assert not matches(parse("badbyte"), event)


def test_long_tokens_are_dropped_but_keep_their_position() -> None:
    long_word = "x" * 256
    assert tokenize(f"a {long_word} b") == ["a", "b"]
    assert tokenize("y" * 255) == ["y" * 255]
    event = {"message": f"alpha {long_word} beta"}
    assert matches(parse("alpha"), event)
    assert not matches(parse(long_word), event)  # nothing searchable left, as in the index
    assert not matches(parse('"alpha beta"'), event)  # the dropped token still separates them
    assert not matches(parse("xxx*"), event)


def test_lowercasing_happens_after_splitting() -> None:
    # 'İ'.lower() adds a combining mark that is not alphanumeric; tantivy still sees one token.
    assert matches(parse("istanbul*"), {"message": "İstanbul"}) is False
    assert matches(parse("stanbul"), {"message": "İstanbul"}) is False
    assert matches(parse("İSTANBUL"), {"message": "İstanbul"}) is True


# -- agreement with a deliberately naive reference -------------------------------------------------------


# The tantivy store's message analyser, built independently of the matcher's code path.
_STORE_ANALYZER = (
    tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
    .filter(tantivy.Filter.remove_long(256))
    .filter(tantivy.Filter.lowercase())
    .build()
)


def _ref_tokens(text: str) -> list[str]:
    clean = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
    return list(_STORE_ANALYZER.analyze(clean))


def _ref_text(value: str, message: str | None) -> bool:
    if message is None:
        return False
    wanted, tokens = _ref_tokens(value), _ref_tokens(message)
    if not wanted:
        return False
    return any(tokens[i : i + len(wanted)] == wanted for i in range(len(tokens)))


def _ref_range(value: float | None, lower: float | None, upper: float | None, il: bool, iu: bool) -> bool:
    if value is None:
        return False
    if lower is not None and (value < lower or (value == lower and not il)):
        return False
    return not (upper is not None and (value > upper or (value == upper and not iu)))


_words = st.sampled_from(
    ["db", "DB", "error", "Érror", "x1", "42", "straße", "東京", "a_b", "ok", "İstanbul", "stanbul"]
)
_seps = st.sampled_from([" ", "-", ".", ":", "_", ", ", "\n", "/", "!"])
_messages = st.lists(st.tuples(_words, _seps), max_size=8).map(lambda parts: "".join(w + s for w, s in parts))


@settings(max_examples=200, deadline=None)
@given(message=st.none() | _messages, value=st.text(max_size=12) | _messages, phrase=st.booleans())
def test_message_term_and_phrase_agree_with_reference(message: str | None, value: str, phrase: bool) -> None:
    event = {} if message is None else {"message": message}
    node: Node = Phrase("message", value) if phrase else Term("message", value)
    assert matches(node, event) is _ref_text(value, message)


@settings(max_examples=200, deadline=None)
@given(
    code=st.none() | st.integers(100, 599),
    lower=st.none() | st.integers(100, 599),
    upper=st.none() | st.integers(100, 599),
    il=st.booleans(),
    iu=st.booleans(),
)
def test_numeric_range_and_term_agree_with_reference(
    code: int | None, lower: int | None, upper: int | None, il: bool, iu: bool
) -> None:
    event = {} if code is None else {"status_code": code}
    node = Range("status_code", None if lower is None else str(lower), None if upper is None else str(upper), il, iu)
    assert matches(node, event) is _ref_range(code, lower, upper, il, iu)
    if lower is not None:
        assert matches(Term("status_code", str(lower)), event) is (code == lower)


@settings(max_examples=200, deadline=None)
@given(
    when=st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    lower=st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    upper=st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1)),
    il=st.booleans(),
    iu=st.booleans(),
)
def test_timestamp_range_agrees_with_reference(
    when: datetime | None, lower: datetime | None, upper: datetime | None, il: bool, iu: bool
) -> None:
    # Events carry millisecond precision; bounds are truncated the same way by resolve_time.
    def ms(value: datetime | None) -> float | None:
        if value is None:
            return None
        return float((value.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1))

    event = {} if when is None else {"timestamp": format_timestamp(when.replace(tzinfo=UTC))}
    node = Range(
        "timestamp",
        None if lower is None else lower.isoformat() + "Z",
        None if upper is None else upper.isoformat() + "Z",
        il,
        iu,
    )
    assert matches(node, event) is _ref_range(ms(when), ms(lower), ms(upper), il, iu)


@settings(max_examples=200, deadline=None)
@given(
    actual=st.none() | st.text(max_size=6, alphabet="abAB-/ é"),
    wanted=st.text(min_size=1, max_size=6, alphabet="abAB-/ é"),
)
def test_keyword_term_phrase_prefix_agree_with_reference(actual: str | None, wanted: str) -> None:
    event = {} if actual is None else {"service": actual, "attrs": {"k": actual}}
    for field in ("service", "attrs.k"):
        assert matches(Term(field, wanted), event) is (actual == wanted)
        assert matches(Phrase(field, wanted), event) is (actual == wanted)
        assert matches(Prefix(field, wanted), event) is (actual is not None and actual.startswith(wanted))
        assert matches(Not(Term(field, wanted)), event) is (actual != wanted)
