"""Recursive-descent parser of the query language (DESIGN.md §6) into the tree of ``ast.py``.

Grammar (precedence NOT > AND > OR, default operator AND)::

    query   := or_expr EOF
    or_expr := and_expr (("OR" | "||") and_expr)*
    and_expr:= unary ((("AND" | "&&"))? unary)*
    unary   := "+"* (("NOT" | "!" | "-") unary | primary)
    primary := "(" or_expr ")" | WORD | "PHRASE" | FIELD ":" value
    value   := WORD | WORD"*" | "PHRASE" | (">=" | ">" | "<=" | "<") bound
             | ("[" | "{") bound "TO" bound ("]" | "}")

Values are validated against ``shared.models.field_type`` but kept as strings, so
every backend converts them itself. Anything wrong with the input raises
:class:`QuerySyntaxError`, never another exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from shared.models import ALL_FIELDS, ATTRS_PREFIX, LEVELS, field_type, from_epoch_ms, to_millis
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.errors import QuerySyntaxError

# Recursion costs ~4 Python frames per nesting level; 100 keeps us far below the
# interpreter's default limit of 1000 even when called from deep stacks.
MAX_DEPTH_LIMIT: Final[int] = 100

LEVEL_ALIASES: Final[dict[str, str]] = {
    **{level.lower(): level for level in LEVELS},
    "warn": "WARNING",
    "err": "ERROR",
    "fatal": "CRITICAL",
    "crit": "CRITICAL",
}

_UNIT_SECONDS: Final[dict[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE_RE: Final = re.compile(r"now(?:([+-])([0-9]+)([smhdw]))?", re.IGNORECASE)
# Unsigned and at most 18 digits: status codes are never negative and stores keep i64.
_STATUS_CLASS_RE: Final = re.compile(r"([1-5])xx", re.IGNORECASE)
_INT_RE: Final = re.compile(r"[0-9]{1,18}")
_FLOAT_RE: Final = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
ATTR_KEY_RE: Final = re.compile(r"[A-Za-z0-9_.\-]+")
_TIME_EXPECTED: Final[str] = "an ISO 8601 time, epoch milliseconds or now[+-]<n><s|m|h|d|w>"
_FIELD_LIST: Final[str] = ", ".join(ALL_FIELDS) + f", {ATTRS_PREFIX}<key>"


def resolve_time(value: str, *, now: datetime | None = None) -> datetime:
    """Resolve ISO 8601 (naive = UTC), epoch milliseconds or ``now[+-]N[smhdw]`` to an aware UTC datetime."""
    text = value.strip()
    if not text:
        raise ValueError("empty time value")
    try:
        if text.isascii() and text.isdigit():
            return from_epoch_ms(int(text))
        match = _RELATIVE_RE.fullmatch(text)
        if match:
            base = now if now is not None else datetime.now(UTC)
            if match.group(1):
                delta = timedelta(seconds=int(match.group(2)) * _UNIT_SECONDS[match.group(3).lower()])
                base = base + delta if match.group(1) == "+" else base - delta
            return to_millis(base)
        return to_millis(datetime.fromisoformat(text))
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(
            f"invalid time {value!r}: expected ISO 8601, epoch milliseconds or now[+-]<n><s|m|h|d|w>"
        ) from exc


@dataclass(slots=True)
class _Token:
    # kind: "(", ")", "AND", "OR", "NOT", "-", "+", "QUOTED", "WORD", "FIELD" or "EOF"
    kind: str
    pos: int
    text: str = ""
    star: bool = False


def _describe(tok: _Token) -> str:
    if tok.kind == "EOF":
        return "unexpected end of query"
    if tok.kind in ("AND", "OR", "NOT"):
        return f"unexpected operator {tok.text!r}"
    return f"unexpected {tok.kind!r}"


class _Lexer:
    """Tokens for the operator level; field values are read on demand by the parser.

    Values are context dependent (``:`` is literal inside a value, a range spans
    whitespace), so the parser calls :meth:`read_word` / :meth:`read_quoted`
    directly after a FIELD token instead of forcing one global token set.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self._peeked: _Token | None = None

    def char(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def skip_ws(self) -> None:
        text = self.text
        while self.pos < len(text) and text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> _Token:
        if self._peeked is None:
            self._peeked = self._lex()
        return self._peeked

    def take(self) -> _Token:
        tok = self.peek()
        self._peeked = None
        return tok

    def _lex(self) -> _Token:
        self.skip_ws()
        start = self.pos
        c = self.char()
        if not c:
            return _Token("EOF", start)
        if c in "()":
            self.pos += 1
            return _Token(c, start, c)
        if c == '"':
            value = self.read_quoted()
            self.expect_boundary("'\"'")
            return _Token("QUOTED", start, value)
        two = self.text[start : start + 2]
        if two in ("&&", "||"):
            self.pos += 2
            return _Token("AND" if two == "&&" else "OR", start, two)
        if c == "!":
            self.pos += 1
            return _Token("NOT", start, c)
        if c in "-+":
            nxt = self.char(1)
            if not nxt or nxt.isspace() or nxt == ")":
                raise QuerySyntaxError(f"{c!r} must be followed by a term", start + 1, f"a term right after {c!r}")
            self.pos += 1
            return _Token(c, start, c)
        value, star, field = self.read_word("()", bare=True)
        if field is not None:
            return _Token("FIELD", start, field)
        raw = self.text[start : self.pos]
        if raw in ("AND", "OR", "NOT"):
            return _Token(raw, start, raw)
        return _Token("WORD", start, value, star)

    def read_word(self, stops: str, *, bare: bool = False) -> tuple[str, bool, str | None]:
        """Read an unquoted word up to whitespace or ``stops``: (value, trailing '*', field name).

        In bare mode the first unescaped ':' ends the word as a field name.
        """
        text = self.text
        start = self.pos
        chars: list[str] = []
        while self.pos < len(text):
            c = text[self.pos]
            if c == "\\":
                if self.pos + 1 >= len(text):
                    raise QuerySyntaxError("dangling backslash", self.pos, "a character after '\\'")
                chars.append(text[self.pos + 1])
                self.pos += 2
                continue
            if c.isspace() or c in stops:
                break
            if c == '"':
                raise QuerySyntaxError(
                    "unexpected '\"' inside a word", self.pos, "whitespace before '\"' or an escaped '\\\"'"
                )
            if bare and c == ":":
                name = text[start : self.pos]
                self.pos += 1
                return "", False, name
            if c == "*":
                nxt = self.char(1)
                if not nxt or nxt.isspace() or nxt in stops:
                    self.pos += 1
                    return "".join(chars), True, None
                raise QuerySyntaxError(
                    "'*' is only allowed at the end of a value (escape a literal one as '\\*')",
                    self.pos,
                    "whitespace after '*'",
                )
            chars.append(c)
            self.pos += 1
        return "".join(chars), False, None

    def read_quoted(self) -> str:
        """Read a ``"..."`` string starting at the current '"', honouring backslash escapes."""
        text = self.text
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(text):
            c = text[self.pos]
            if c == "\\" and self.pos + 1 < len(text):
                chars.append(text[self.pos + 1])
                self.pos += 2
                continue
            if c == '"':
                self.pos += 1
                return "".join(chars)
            chars.append(c)
            self.pos += 1
        raise QuerySyntaxError("unterminated quoted string", start, "a closing '\"'")

    def expect_boundary(self, after: str) -> None:
        """Require whitespace, a parenthesis or the end after a closed quote or range."""
        c = self.char()
        if c and not c.isspace() and c not in "()":
            raise QuerySyntaxError(f"unexpected {c!r} after {after}", self.pos, f"whitespace after {after}")


def _combine(kind: type[And] | type[Or], children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        if isinstance(child, kind):
            flat.extend(child.children)
        else:
            flat.append(child)
    return flat[0] if len(flat) == 1 else kind(tuple(flat))


class _Parser:
    def __init__(self, text: str, max_terms: int, max_depth: int) -> None:
        self.text = text
        self.lex = _Lexer(text)
        self.max_terms = max_terms
        self.max_depth = max_depth
        self.depth = 0
        self.leaves = 0

    # -- structure ---------------------------------------------------------

    def parse(self) -> Node:
        node = self.or_expr(None)
        tok = self.lex.peek()
        if tok.kind != "EOF":
            # and_expr stops only at OR, ')' or EOF and or_expr consumes OR.
            raise QuerySyntaxError("unmatched ')'", tok.pos, "a term, an operator or the end of the query")
        return node

    def or_expr(self, after: str | None) -> Node:
        children = [self.and_expr(after)]
        while self.lex.peek().kind == "OR":
            op = self.lex.take()
            children.append(self.and_expr(op.text))
        return _combine(Or, children)

    def and_expr(self, after: str | None) -> Node:
        children = [self.unary(after)]
        while True:
            tok = self.lex.peek()
            if tok.kind in ("OR", ")", "EOF"):
                break
            if tok.kind == "AND":
                self.lex.take()
                children.append(self.unary(tok.text))
            else:
                children.append(self.unary(None))
        return _combine(And, children)

    def unary(self, after: str | None) -> Node:
        tok = self.lex.peek()
        while tok.kind == "+":
            self.lex.take()
            after = "+"
            tok = self.lex.peek()
        if tok.kind in ("NOT", "-"):
            self.lex.take()
            self.enter(tok)
            child = self.unary(tok.text)
            self.depth -= 1
            return Not(child)
        return self.primary(after)

    def primary(self, after: str | None) -> Node:
        tok = self.lex.take()
        if tok.kind == "(":
            self.enter(tok)
            node = self.or_expr("(")
            close = self.lex.take()
            if close.kind != ")":
                raise QuerySyntaxError(f"unclosed '(' opened at position {tok.pos}", close.pos, "')'")
            self.depth -= 1
            return node
        if tok.kind == "WORD":
            if tok.star:
                return self.prefix("message", tok.text, tok.pos)
            return self.term("message", tok.text, tok.pos)
        if tok.kind == "QUOTED":
            return self.phrase("message", tok.text, tok.pos)
        if tok.kind == "FIELD":
            return self.field_clause(tok)
        expected = f"a term after {after!r}" if after else "a term"
        raise QuerySyntaxError(_describe(tok), tok.pos, expected)

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > self.max_depth:
            raise QuerySyntaxError(
                f"query nested deeper than {self.max_depth} levels",
                tok.pos,
                f"at most {self.max_depth} nested parentheses or NOTs",
            )

    def count(self, leaves: int, pos: int) -> None:
        self.leaves += leaves
        if self.leaves > self.max_terms:
            raise QuerySyntaxError(
                f"query has more than {self.max_terms} terms", pos, f"at most {self.max_terms} terms"
            )

    # -- field clauses -----------------------------------------------------

    def resolve_field(self, name: str, pos: int) -> str:
        if not name:
            raise QuerySyntaxError("missing field name before ':'", pos, "a field name before ':'")
        if name[: len(ATTRS_PREFIX)].lower() == ATTRS_PREFIX:
            key = name[len(ATTRS_PREFIX) :]
            if ATTR_KEY_RE.fullmatch(key):
                return ATTRS_PREFIX + key
            raise QuerySyntaxError(
                f"invalid attribute key {key!r}",
                pos + len(ATTRS_PREFIX),
                "an attribute key of letters, digits, '_', '.' or '-'",
            )
        lowered = name.lower()
        if lowered in ALL_FIELDS:
            return lowered
        raise QuerySyntaxError(
            f"unknown field {name!r} (fields: {_FIELD_LIST}); to search the text, escape ':' as '\\:' or quote it",
            pos,
            "a known field name",
        )

    def field_clause(self, tok: _Token) -> Node:
        field = self.resolve_field(tok.text, tok.pos)
        lex = self.lex
        # Lucene and Kibana accept "field: value"; people type it that way.
        lex.skip_ws()
        pos = lex.pos
        c = lex.char()
        if not c or c == ")":
            raise QuerySyntaxError(f"missing value for field {field!r}", pos, "a value after ':'")
        if c == "(":
            raise QuerySyntaxError("grouping values as 'field:(...)' is not supported", pos, "a value after ':'")
        if c == '"':
            value = lex.read_quoted()
            lex.expect_boundary("'\"'")
            return self.phrase(field, value, pos)
        if c in "<>":
            return self.comparison(field, pos)
        if c in "[{":
            return self.range_clause(field, pos)
        value, star, _ = lex.read_word("()")
        if star:
            return self.prefix(field, value, pos)
        return self.term(field, value, pos)

    def comparison(self, field: str, pos: int) -> Node:
        lex = self.lex
        op = lex.text[pos : pos + 2] if lex.char(1) == "=" else lex.char()
        lex.pos += len(op)
        lex.skip_ws()
        vpos = lex.pos
        c = lex.char()
        if not c or c in "()":
            raise QuerySyntaxError(f"missing value after {op!r}", vpos, f"a value after {op!r}")
        if c == '"':
            value = lex.read_quoted()
            lex.expect_boundary("'\"'")
        else:
            value, star, _ = lex.read_word("()")
            if star:
                raise QuerySyntaxError("'*' is not allowed in a comparison", lex.pos - 1, "a value without '*'")
        inclusive = op.endswith("=")
        if op.startswith(">"):
            return self.range(field, value, None, inclusive, True, pos, vpos, vpos)
        return self.range(field, None, value, True, inclusive, pos, vpos, vpos)

    def range_clause(self, field: str, pos: int) -> Node:
        lex = self.lex
        include_lower = lex.char() == "["
        lex.pos += 1
        lex.skip_ws()
        lo_pos = lex.pos
        lower = self.range_bound()
        lex.skip_ws()
        to_pos = lex.pos
        if lex.text.startswith("TO", to_pos) and lex.char(2).isspace():
            lex.pos += 2
        elif lex.text.startswith("TO", to_pos) and lex.char(2) in ("", "]", "}"):
            raise QuerySyntaxError("missing upper bound of range", to_pos + 2, "a value or '*' after 'TO'")
        else:
            raise QuerySyntaxError("expected 'TO' in range", to_pos, "'TO'")
        lex.skip_ws()
        hi_pos = lex.pos
        upper = self.range_bound()
        lex.skip_ws()
        c = lex.char()
        if c not in ("]", "}"):
            raise QuerySyntaxError(f"unclosed range opened at position {pos}", lex.pos, "']' or '}'")
        lex.pos += 1
        lex.expect_boundary("the range")
        return self.range(field, lower, upper, include_lower, c == "]", pos, lo_pos, hi_pos)

    def range_bound(self) -> str | None:
        lex = self.lex
        start = lex.pos
        c = lex.char()
        if c == '"':
            return lex.read_quoted()
        if not c or c in "()[]{}":
            raise QuerySyntaxError("missing range bound", start, "a value or '*'")
        value, star, _ = lex.read_word("()]}")
        if lex.text[start : lex.pos] == "TO":
            raise QuerySyntaxError("missing lower bound of range", start, "a value or '*' before 'TO'")
        if star:
            if value == "" and lex.pos - start == 1:
                return None
            raise QuerySyntaxError("wildcards are not allowed in ranges", lex.pos - 1, "a value or '*'")
        return value

    # -- leaves --------------------------------------------------------------

    def check_value(self, field: str, value: str, pos: int) -> str:
        """Validate ``value`` for the field's type; return it normalised."""
        ftype = field_type(field)
        if field == "level":
            level = LEVEL_ALIASES.get(value.lower())
            if level is None:
                raise QuerySyntaxError(f"unknown level {value!r} (levels: {', '.join(LEVELS)})", pos, "a log level")
            return level
        if ftype == "integer" and not _INT_RE.fullmatch(value):
            raise QuerySyntaxError(f"{field} needs a non-negative integer, got {value!r}", pos, "an integer")
        if ftype == "float" and not _FLOAT_RE.fullmatch(value):
            raise QuerySyntaxError(f"{field} needs a number, got {value!r}", pos, "a number")
        if ftype == "date":
            try:
                resolve_time(value)
            except ValueError:
                raise QuerySyntaxError(f"invalid time {value!r}", pos, _TIME_EXPECTED) from None
        return value

    def term(self, field: str, value: str, pos: int) -> Node:
        status_class = _STATUS_CLASS_RE.fullmatch(value) if field == "status_code" else None
        if status_class:
            # "status_code:5xx" is what people type; it means the range of that class.
            digit = status_class.group(1)
            self.count(1, pos)
            return Range(field, f"{digit}00", f"{digit}99", True, True)
        value = self.check_value(field, value, pos)
        self.count(1, pos)
        return Term(field, value)

    def phrase(self, field: str, value: str, pos: int) -> Node:
        if field_type(field) in ("integer", "float", "date"):
            # Quoting only protects characters there; the value is a single number/time.
            return self.term(field, value, pos)
        value = self.check_value(field, value, pos)
        self.count(1, pos)
        return Phrase(field, value)

    def prefix(self, field: str, value: str, pos: int) -> Node:
        ftype = field_type(field)
        if ftype in ("integer", "float", "date"):
            raise QuerySyntaxError(
                f"prefix ('*') is not supported on {ftype} field {field!r}", pos, "a value without '*'"
            )
        if not value:
            raise QuerySyntaxError("empty prefix before '*'", pos, "at least one character before '*'")
        if field == "level":
            value = value.upper()
        self.count(1, pos)
        return Prefix(field, value)

    def range(
        self,
        field: str,
        lower: str | None,
        upper: str | None,
        include_lower: bool,
        include_upper: bool,
        pos: int,
        lo_pos: int,
        hi_pos: int,
    ) -> Node:
        if field_type(field) == "text":
            raise QuerySyntaxError(
                f"ranges are not supported on the text field {field!r}", pos, 'a word, a "phrase" or word*'
            )
        if lower is not None:
            lower = self.check_value(field, lower, lo_pos)
        if upper is not None:
            upper = self.check_value(field, upper, hi_pos)
        # The include flag of an open end means nothing; fixing it keeps trees comparable.
        include_lower = include_lower or lower is None
        include_upper = include_upper or upper is None
        if field == "level":
            return self.level_range(lower, upper, include_lower, include_upper, pos)
        self.count(1, pos)
        return Range(field, lower, upper, include_lower, include_upper)

    def level_range(
        self, lower: str | None, upper: str | None, include_lower: bool, include_upper: bool, pos: int
    ) -> Node:
        # Level names do not sort by severity, so a range becomes the OR of the levels it covers.
        lo = LEVELS.index(lower) if lower is not None else -1
        hi = LEVELS.index(upper) if upper is not None else len(LEVELS)
        selected = [
            level
            for i, level in enumerate(LEVELS)
            if (i >= lo if include_lower else i > lo) and (i <= hi if include_upper else i < hi)
        ]
        if not selected:
            raise QuerySyntaxError("level range matches no level", pos, "a range covering at least one level")
        self.count(len(selected), pos)
        return _combine(Or, [Term("level", level) for level in selected])


def parse(text: str, *, max_length: int = 4096, max_terms: int = 256, max_depth: int = 32) -> Node:
    """Parse query text into a tree; raise :class:`QuerySyntaxError` on any invalid input."""
    if not 1 <= max_depth <= MAX_DEPTH_LIMIT:
        raise ValueError(f"max_depth must be between 1 and {MAX_DEPTH_LIMIT}")
    if len(text) > max_length:
        raise QuerySyntaxError(
            f"query longer than {max_length} characters", max_length, f"at most {max_length} characters"
        )
    if not text.strip():
        return MatchAll()
    parser = _Parser(text, max_terms, max_depth)
    try:
        return parser.parse()
    except RecursionError:
        # Unreachable with MAX_DEPTH_LIMIT unless the caller's stack is already nearly full.
        raise QuerySyntaxError("query nested too deeply", parser.lex.pos, "a less nested query") from None
