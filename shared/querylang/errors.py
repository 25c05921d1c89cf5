"""The one exception the query language raises for bad user input."""

from __future__ import annotations


class QuerySyntaxError(ValueError):
    """A query that cannot be parsed; the API turns it into a 400 naming the position.

    ``position`` is a 0-based character offset into the query text (``len(text)``
    for "unexpected end"); ``expected`` is a short phrase such as ``"')'"``.
    """

    def __init__(self, message: str, position: int, expected: str) -> None:
        super().__init__(message, position, expected)
        self.message = message
        self.position = position
        self.expected = expected

    def __str__(self) -> str:
        return f"{self.message} at position {self.position} (expected {self.expected})"

    def to_dict(self) -> dict[str, str | int]:
        """JSON body for the 400 response: ``message``, ``position``, ``expected``."""
        return {"message": self.message, "position": self.position, "expected": self.expected}
