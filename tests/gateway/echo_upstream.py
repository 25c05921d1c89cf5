"""A tiny upstream for the gateway tests: answers every request with the headers it received."""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

app = FastAPI()


@app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
async def echo(path: str, request: Request) -> JSONResponse:
    """Echo the method, path and request headers (lower-cased names, repeated ones joined)."""
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": "/" + path,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body_length": len(body),
        }
    )
