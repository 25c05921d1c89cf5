"""Print a query tree back as query-language text: ``parse(to_text(t)) == t`` for parsed trees."""

from __future__ import annotations

from shared.models import ATTRS_PREFIX, field_type
from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.parser import ATTR_KEY_RE

# Characters the lexer treats specially anywhere inside an unquoted word.
_ALWAYS_ESCAPE = frozenset('\\"()*')
# Characters that are special only as the first character of a word (operators, ranges, compares).
_FIRST_ESCAPE = frozenset("-+!&|<>[]{}")
_KEYWORDS = frozenset({"AND", "OR", "NOT"})
_BOUND_UNSAFE = frozenset('\\"()[]{}*')
_COMPARE_UNSAFE = frozenset('\\"()*')

_OR, _AND, _NOT, _LEAF = 1, 2, 3, 4


def to_text(node: Node) -> str:
    """Render ``node`` as query text (``""`` for MatchAll); raise ValueError for unprintable trees."""
    if isinstance(node, MatchAll):
        return ""
    return _fmt(node)


def _precedence(node: Node) -> int:
    if isinstance(node, (And, Or)) and len(node.children) == 1:
        return _precedence(node.children[0])
    if isinstance(node, Or):
        return _OR
    if isinstance(node, And):
        return _AND
    if isinstance(node, Not):
        return _NOT
    return _LEAF


def _wrap(node: Node, min_precedence: int) -> str:
    text = _fmt(node)
    return f"({text})" if _precedence(node) < min_precedence else text


def _fmt(node: Node) -> str:
    if isinstance(node, (And, Or)):
        if not node.children:
            raise ValueError(f"cannot print an empty {type(node).__name__}")
        if isinstance(node, Or):
            return " OR ".join(_wrap(child, _OR) for child in node.children)
        return " ".join(_wrap(child, _AND) for child in node.children)
    if isinstance(node, Not):
        return "NOT " + _wrap(node.child, _NOT)
    if isinstance(node, MatchAll):
        raise ValueError("MatchAll can only be printed as the whole query")
    _check_field(node.field)
    bare = node.field == "message"
    head = "" if bare else f"{node.field}:"
    if isinstance(node, Phrase):
        return head + _quote(node.value)
    if isinstance(node, Prefix):
        if not node.value:
            raise ValueError("cannot print an empty prefix")
        return head + _escape_word(node.value, bare=bare) + "*"
    if isinstance(node, Term):
        if not node.value:
            raise ValueError("cannot print an empty term")
        if field_type(node.field) in ("integer", "float", "date") and _unsafe(node.value, _COMPARE_UNSAFE):
            # The parser turns quoted numbers/times into Terms, and quotes read better than escapes.
            return head + _quote(node.value)
        return head + _escape_word(node.value, bare=bare)
    return head + _range(node)


def _check_field(field: str) -> None:
    if field.startswith(ATTRS_PREFIX):
        if not ATTR_KEY_RE.fullmatch(field[len(ATTRS_PREFIX) :]):
            raise ValueError(f"attribute key of {field!r} cannot be written in a query")
    elif field_type(field) is None:
        raise ValueError(f"unknown field {field!r}")


def _range(node: Range) -> str:
    if node.lower is not None and node.upper is None:
        return (">=" if node.include_lower else ">") + _compare_operand(node.lower)
    if node.lower is None and node.upper is not None:
        return ("<=" if node.include_upper else "<") + _compare_operand(node.upper)
    return (
        ("[" if node.include_lower else "{")
        + f"{_bound(node.lower)} TO {_bound(node.upper)}"
        + ("]" if node.include_upper else "}")
    )


def _unsafe(value: str, unsafe: frozenset[str]) -> bool:
    return not value or any(c.isspace() or c in unsafe for c in value)


def _compare_operand(value: str) -> str:
    # A leading '=' would merge with '>' / '<' into '>=' / '<='.
    if _unsafe(value, _COMPARE_UNSAFE) or value.startswith("="):
        return _quote(value)
    return value


def _bound(value: str | None) -> str:
    if value is None:
        return "*"
    if _unsafe(value, _BOUND_UNSAFE) or value == "TO":
        return _quote(value)
    return value


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _escape_word(value: str, *, bare: bool) -> str:
    out: list[str] = []
    for i, c in enumerate(value):
        if c.isspace() or c in _ALWAYS_ESCAPE or (bare and c == ":") or (i == 0 and c in _FIRST_ESCAPE):
            out.append("\\")
        out.append(c)
    text = "".join(out)
    if bare and text in _KEYWORDS:
        text = "\\" + text
    return text
