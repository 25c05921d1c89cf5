"""The query language of DESIGN.md §6: parse text to a tree, print it back, match it in memory."""

from shared.querylang.ast import And, MatchAll, Node, Not, Or, Phrase, Prefix, Range, Term
from shared.querylang.errors import QuerySyntaxError
from shared.querylang.matcher import compile_matcher, matches, tokenize
from shared.querylang.parser import parse, resolve_time
from shared.querylang.printer import to_text

__all__ = [
    "And",
    "MatchAll",
    "Node",
    "Not",
    "Or",
    "Phrase",
    "Prefix",
    "QuerySyntaxError",
    "Range",
    "Term",
    "compile_matcher",
    "matches",
    "parse",
    "resolve_time",
    "to_text",
    "tokenize",
]
