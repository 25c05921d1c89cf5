"""Opaque search cursors: base64url (no padding) of orjson ``{"s": sort, "o": order, "k": [...]}``.

``k`` is the sort key of the last hit of a page, in the backend's own terms (tantivy:
``[value | null, tie_breaker, id]``; Elasticsearch: the hit's ``sort`` array). The next page
holds the hits whose key is strictly after it (search_after semantics), so paging has no
gaps and no repeats however deep it goes. A cursor only fits the sort it was made for.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final

import orjson

MAX_CURSOR_LENGTH: Final[int] = 4096


def encode_cursor(sort: str, order: str, key: list[Any]) -> str:
    """Make the cursor that resumes after ``key`` for this sort field and order."""
    raw = orjson.dumps({"s": sort, "o": order, "k": key})
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, sort: str, order: str) -> list[Any]:
    """The sort key inside ``cursor``; ValueError when it is malformed or made for another sort."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError("invalid cursor")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = orjson.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeEncodeError, orjson.JSONDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    if not isinstance(data, dict) or not isinstance(data.get("k"), list) or not data["k"]:
        raise ValueError("invalid cursor")
    if data.get("s") != sort or data.get("o") != order:
        raise ValueError("cursor was made for another sort order; start again without a cursor")
    return list(data["k"])
