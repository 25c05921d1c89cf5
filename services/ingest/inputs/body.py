"""Reading request bodies of the HTTP inputs within the size limit, gzip included."""

from __future__ import annotations

import asyncio

from fastapi import Request

from services.ingest.inputs.compression import DecompressionError, DecompressionLimitError, gunzip_bytes
from shared.errors import ApiError
from shared.metrics import INGESTED_BYTES
from shared.settings import Settings


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"request body larger than {limit} bytes")


async def read_body(request: Request, *, settings: Settings, input_name: str) -> bytes:
    """The decoded body: 413 past ``max_request_bytes`` (compressed or not), 400/415 for bad encodings.

    The decoded size is capped by the same limit, so a small gzip body cannot
    inflate into an unbounded buffer.
    """
    limit = settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in {"identity", "", "gzip", "x-gzip"}:
        raise ApiError(415, f"unsupported Content-Encoding {encoding!r}: send identity or gzip")
    chunks: list[bytes] = []
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    INGESTED_BYTES.labels(input_name).inc(received)
    if encoding in {"gzip", "x-gzip"} and body:
        try:
            # The size cap bounds memory already; a ratio test would only refuse
            # legitimately repetitive batches.
            body = await asyncio.to_thread(gunzip_bytes, body, max_bytes=limit, max_ratio=1 << 40)
        except DecompressionLimitError as exc:
            raise ApiError(413, exc.reason) from None
        except DecompressionError as exc:
            raise ApiError(400, exc.reason) from None
    return body
