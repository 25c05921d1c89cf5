"""The query tree of DESIGN.md §6: one parser produces it, every backend translates it.

Values stay strings here; each backend converts them using ``shared.models.field_type``.
``field`` is the event field (``message`` for bare words, ``attrs.key`` for attributes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty query: every event."""


@dataclass(frozen=True, slots=True)
class Term:
    """``word`` (field=message, analysed) or ``field:value`` (exact on keywords and numbers)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Phrase:
    """``"a b"`` on message, or ``field:"a b"`` (exact value with spaces on keywords)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Prefix:
    """``field:/api/users*``: keyword starting with ``value`` (the ``*`` is not part of it)."""

    field: str
    value: str


@dataclass(frozen=True, slots=True)
class Range:
    """``field:>=500``, ``field:<1``, ``field:[100 TO 200]``, ``field:{a TO b}``; None = open end."""

    field: str
    lower: str | None
    upper: str | None
    include_lower: bool = True
    include_upper: bool = True


@dataclass(frozen=True, slots=True)
class Not:
    """``NOT x`` or ``-x``."""

    child: Node


@dataclass(frozen=True, slots=True)
class And:
    """All children match (the default operator)."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any child matches."""

    children: tuple[Node, ...]


Node: TypeAlias = MatchAll | Term | Phrase | Prefix | Range | Not | And | Or
