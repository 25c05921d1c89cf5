"""Bounded gzip decompression: the output is capped in size and in ratio, memory stays flat.

A gzip bomb (a few KB that inflate to gigabytes) is stopped as soon as the
decompressed size passes ``max_bytes`` or the ratio decompressed/compressed
passes ``max_ratio`` (checked once the output is past ``ratio_floor``, because
tiny files legitimately compress far better than 100:1).
"""

from __future__ import annotations

import zlib
from typing import BinaryIO, Final

GZIP_MAGIC: Final = b"\x1f\x8b"
_CHUNK: Final = 64 * 1024
RATIO_FLOOR: Final = 1 << 20


class DecompressionError(ValueError):
    """The data is not valid gzip; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DecompressionLimitError(DecompressionError):
    """The data inflates past a limit (size or ratio): refused as a likely gzip bomb."""


class GunzipReader:
    """A file-like ``read(n)`` over the decompressed content of a gzip stream (multi-member aware)."""

    def __init__(self, raw: BinaryIO, *, max_bytes: int, max_ratio: int, ratio_floor: int = RATIO_FLOOR) -> None:
        self._raw = raw
        self._max_bytes = max_bytes
        self._max_ratio = max_ratio
        self._ratio_floor = ratio_floor
        self._inflater = zlib.decompressobj(wbits=31)
        self._pending = b""
        self._in = 0
        self.out = 0
        self._member_open = False
        self._finished = False

    @property
    def compressed_bytes(self) -> int:
        """Compressed bytes read from the underlying stream so far."""
        return self._in

    def readable(self) -> bool:
        """File-like protocol."""
        return True

    def _check(self) -> None:
        if self.out > self._max_bytes:
            raise DecompressionLimitError(
                f"gzip content inflates past the limit of {self._max_bytes} bytes (gzip bomb?)"
            )
        if self.out >= self._ratio_floor and self.out > self._in * self._max_ratio:
            raise DecompressionLimitError(f"gzip compression ratio above {self._max_ratio}:1 (gzip bomb?)")

    def _next_input(self) -> bytes:
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self._inflater.unconsumed_tail:
            return self._inflater.unconsumed_tail
        data = self._raw.read(_CHUNK)
        self._in += len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Up to ``size`` decompressed bytes (``b""`` at the end); -1 reads everything (bounded by the limits)."""
        if size is None or size < 0:
            parts = []
            while chunk := self.read(_CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        while size and not self._finished:
            data = self._next_input()
            if not data:
                if self._member_open:
                    raise DecompressionError("gzip data ends unexpectedly (truncated file)")
                self._finished = True
                break
            if not self._member_open:
                if not data.startswith(GZIP_MAGIC[: len(data)]):
                    if not data.strip(b"\x00"):
                        continue  # zero padding after the last member is allowed, as gzip(1) does
                    raise DecompressionError("data after the gzip content is not gzip")
                self._member_open = True
            try:
                out = self._inflater.decompress(data, size)
            except zlib.error as exc:
                raise DecompressionError(f"invalid gzip data ({exc})") from None
            if self._inflater.eof:
                # Member complete: anything left is the next member (concatenated gzip files).
                self._pending = self._inflater.unused_data
                self._inflater = zlib.decompressobj(wbits=31)
                self._member_open = False
            if out:
                self.out += len(out)
                self._check()
                return out
        return b""


def gunzip_bytes(data: bytes, *, max_bytes: int, max_ratio: int) -> bytes:
    """Decompress a whole gzip body held in memory, within the limits."""
    import io

    return GunzipReader(io.BytesIO(data), max_bytes=max_bytes, max_ratio=max_ratio).read()


def measure_gzip(raw: BinaryIO, *, max_bytes: int, max_ratio: int) -> int:
    """Inflate ``raw`` to nowhere and return the decompressed size; raises on bombs and corrupt data."""
    reader = GunzipReader(raw, max_bytes=max_bytes, max_ratio=max_ratio)
    while reader.read(_CHUNK):
        pass
    return reader.out
