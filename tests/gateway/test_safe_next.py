"""``safe_next``: only local paths survive, every open-redirect trick becomes "/"."""

from __future__ import annotations

import pytest

from services.gateway.auth.security import safe_next

NASTY = [
    None,
    "",
    "https://evil.example",
    "http://evil.example/path",
    "//evil.example",
    "///evil.example",
    "//evil.example/%2F..",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "/path\\..\\..\\evil",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "evil.example",
    "mailto:a@b.c",
    "/\t/evil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "/ /evil.example",
    "/\r\nLocation: https://evil.example",
    "/\x00/evil.example",
    "/\x7f",
    "/\u2028//evil.example",
    "/" + "a" * 5000,
    "?next=//evil.example",
    "#//evil.example",
]

LOCAL = [
    "/",
    "/search",
    "/search?q=level:ERROR&from=now-15m",
    "/logs/01HXYZ#detail",
    "/files/%2F%2Fencoded",
    "/a/b/c?x=https://elsewhere.example",
]


@pytest.mark.parametrize("value", NASTY)
def test_nasty_next_values_become_root(value: str | None) -> None:
    """Schemes, scheme-relative, backslashes, control characters and oversize values are refused."""
    assert safe_next(value) == "/"


@pytest.mark.parametrize("value", LOCAL)
def test_local_paths_are_kept(value: str) -> None:
    """A plain local path (with query and fragment) is returned unchanged."""
    assert safe_next(value) == value
