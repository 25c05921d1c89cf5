"""Evaluate a query tree in memory on wire-shape event dicts (the live tail's filter).

Semantics mirror the stores: ``message`` is analysed like the tantivy store's
analyser (tantivy's simple tokenizer, i.e. maximal runs of Unicode alphanumerics,
tokens of 256+ bytes dropped, then lower-cased), other fields are compared exactly
(numbers numerically, times as epoch milliseconds), a missing field never matches,
so ``NOT`` of a clause on a missing field does.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Final

import tantivy

from shared.models import ATTRS_PREFIX, field_type
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.parser import resolve_time

Matcher = Callable[[dict[str, Any]], bool]

# tantivy's own tokenizer, so "alphanumeric" is Rust's char::is_alphanumeric (Unicode
# Alphabetic + Numeric), which Python's str.isalnum() is not (e.g. Thai vowel signs).
_SPLITTER: Final = tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple()).build()
#: Same limit as the tantivy store's remove_long filter (shared/store/tantivy_store.py).
MAX_TOKEN_BYTES: Final[int] = 256
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
_MISSING: Final = object()
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


def _epoch_ms(value: datetime) -> int:
    # Integer arithmetic rather than timestamp() * 1000, which goes through a float.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _ONE_MS


def _lower(token: str) -> str:
    # tantivy lower-cases char by char: capital sigma is always U+03C3, never final U+03C2.
    return token.lower() if token.isascii() else "".join([c.lower() for c in token])


def _split(text: str) -> list[str]:
    try:
        return list(_SPLITTER.analyze(text))
    except UnicodeEncodeError:
        # Lone surrogates cannot cross into Rust; U+FFFD is not alphanumeric, so they just split.
        return list(_SPLITTER.analyze(_SURROGATE_RE.sub("\ufffd", text)))


def tokenize(text: str) -> list[str]:
    """Analyse ``text`` like the message field: alphanumeric runs, long ones dropped, lower-cased."""
    return [_lower(t) for t in _split(text) if len(t.encode()) < MAX_TOKEN_BYTES]


@lru_cache(maxsize=4096)
def _analyse(message: str) -> tuple[tuple[str | None, ...], frozenset[str | None]]:
    # A dropped long token still occupies a position in the index, so it stays as None and
    # breaks phrases across it. Cached because several clauses of one query see the same string.
    tokens = tuple(_lower(t) if len(t.encode()) < MAX_TOKEN_BYTES else None for t in _split(message))
    return tokens, frozenset(tokens)


def matches(node: Node, event: dict[str, Any]) -> bool:
    """True when ``event`` (LogEvent.to_dict() shape) satisfies ``node``."""
    return compile_matcher(node)(event)


def compile_matcher(node: Node) -> Matcher:
    """Compile ``node`` once into a predicate over event dicts; raise ValueError on unsupported trees."""
    if isinstance(node, MatchAll):
        return _always
    if isinstance(node, Not):
        child = compile_matcher(node.child)
        return lambda event: not child(event)
    if isinstance(node, And):
        parts = tuple(compile_matcher(c) for c in node.children)
        return lambda event: all(part(event) for part in parts)
    if isinstance(node, Or):
        parts = tuple(compile_matcher(c) for c in node.children)
        return lambda event: any(part(event) for part in parts)
    ftype = field_type(node.field)
    if ftype is None:
        raise ValueError(f"unknown field {node.field!r}")
    getter = _getter(node.field)
    if ftype == "text":
        return _text_matcher(node, getter)
    if ftype == "keyword":
        return _keyword_matcher(node, getter, upper=node.field == "level")
    if isinstance(node, (Phrase, Prefix)) and ftype in ("integer", "float", "date"):
        if isinstance(node, Prefix):
            raise ValueError(f"prefix is not supported on {ftype} field {node.field!r}")
        node = Term(node.field, node.value)
    if ftype == "date":
        return _date_matcher(node, getter)
    return _number_matcher(node, getter, int if ftype == "integer" else float)


def _always(event: dict[str, Any]) -> bool:
    return True


def _getter(field: str) -> Callable[[dict[str, Any]], Any]:
    if field.startswith(ATTRS_PREFIX):
        key = field[len(ATTRS_PREFIX) :]

        def get_attr(event: dict[str, Any]) -> Any:
            attrs = event.get("attrs")
            if not isinstance(attrs, dict):
                return _MISSING
            value = attrs.get(key)
            return _MISSING if value is None else value

        return get_attr

    def get(event: dict[str, Any]) -> Any:
        value = event.get(field)
        return _MISSING if value is None else value

    return get


def _text_matcher(node: Node, getter: Callable[[dict[str, Any]], Any]) -> Matcher:
    if isinstance(node, Range):
        raise ValueError(f"ranges are not supported on text field {node.field!r}")
    if isinstance(node, Prefix):
        prefix = node.value.lower()

        def prefix_match(event: dict[str, Any]) -> bool:
            value = getter(event)
            if not isinstance(value, str):
                return False
            return any(token is not None and token.startswith(prefix) for token in _analyse(value)[0])

        return prefix_match
    assert isinstance(node, (Term, Phrase))
    wanted = tuple(tokenize(node.value))
    if not wanted:
        # Nothing searchable (e.g. only punctuation): the stores find nothing either.
        return lambda event: False
    if len(wanted) == 1:
        # A single word; a multi-token Term (``foo-bar``) is a phrase, as tantivy's query parser makes it.
        word = wanted[0]

        def term_match(event: dict[str, Any]) -> bool:
            value = getter(event)
            return isinstance(value, str) and word in _analyse(value)[1]

        return term_match
    first, width = wanted[0], len(wanted)

    def phrase_match(event: dict[str, Any]) -> bool:
        value = getter(event)
        if not isinstance(value, str):
            return False
        tokens, present = _analyse(value)
        if first not in present:
            return False
        return any(tokens[i] == first and tokens[i : i + width] == wanted for i in range(len(tokens) - width + 1))

    return phrase_match


def _keyword_matcher(node: Node, getter: Callable[[dict[str, Any]], Any], *, upper: bool) -> Matcher:
    def text_of(event: dict[str, Any]) -> str | None:
        value = getter(event)
        if value is _MISSING:
            return None
        text = value if isinstance(value, str) else str(value)
        return text.upper() if upper else text

    if isinstance(node, (Term, Phrase)):
        wanted = node.value.upper() if upper else node.value
        return lambda event: text_of(event) == wanted
    if isinstance(node, Prefix):
        prefix = node.value.upper() if upper else node.value

        def prefix_match(event: dict[str, Any]) -> bool:
            text = text_of(event)
            return text is not None and text.startswith(prefix)

        return prefix_match
    assert isinstance(node, Range)
    return _range_matcher(node, text_of, lambda bound: bound)


def _number_matcher(node: Node, getter: Callable[[dict[str, Any]], Any], convert: Callable[[str], float]) -> Matcher:
    def number_of(event: dict[str, Any]) -> float | None:
        value = getter(event)
        if value is _MISSING or isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return value
        try:
            return float(value)
        except (TypeError, ValueError):
            return None

    if isinstance(node, Term):
        wanted = convert(node.value)
        return lambda event: number_of(event) == wanted
    assert isinstance(node, Range)
    return _range_matcher(node, number_of, convert)


def _event_ms(value: Any) -> int | None:
    if value is _MISSING:
        return None
    try:
        if isinstance(value, datetime):
            return _epoch_ms(value)
        if isinstance(value, str):
            return _epoch_ms(datetime.fromisoformat(value))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return int(value)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def _date_matcher(node: Node, getter: Callable[[dict[str, Any]], Any]) -> Matcher:
    def ms_of(event: dict[str, Any]) -> int | None:
        return _event_ms(getter(event))

    if isinstance(node, Term):
        wanted = _time_bound(node.value)
        return lambda event: (ms := ms_of(event)) is not None and ms == wanted()
    assert isinstance(node, Range)
    lower = _time_bound(node.lower) if node.lower is not None else None
    upper = _time_bound(node.upper) if node.upper is not None else None
    include_lower, include_upper = node.include_lower, node.include_upper

    def range_match(event: dict[str, Any]) -> bool:
        ms = ms_of(event)
        if ms is None:
            return False
        if lower is not None and not (ms >= lower() if include_lower else ms > lower()):
            return False
        return upper is None or (ms <= upper() if include_upper else ms < upper())

    return range_match


def _time_bound(value: str) -> Callable[[], int]:
    """A thunk giving the bound in epoch ms: fixed for absolute times, re-evaluated for ``now…``."""
    if value.strip().lower().startswith("now"):
        offset = _epoch_ms(resolve_time(value, now=_EPOCH))
        return lambda: time.time_ns() // 1_000_000 + offset
    fixed = _epoch_ms(resolve_time(value))
    return lambda: fixed


def _range_matcher(node: Range, value_of: Callable[[dict[str, Any]], Any], convert: Callable[[str], Any]) -> Matcher:
    lower = convert(node.lower) if node.lower is not None else None
    upper = convert(node.upper) if node.upper is not None else None
    include_lower, include_upper = node.include_lower, node.include_upper

    def range_match(event: dict[str, Any]) -> bool:
        value = value_of(event)
        if value is None:
            return False
        if lower is not None and not (value >= lower if include_lower else value > lower):
            return False
        return upper is None or (value <= upper if include_upper else value < upper)

    return range_match
