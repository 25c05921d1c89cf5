#!/usr/bin/env python3
"""Liveness probe of the logwarden image: GET /health/live on the running service's port.

One image runs four services (``logwarden serve gateway|ingest|query|realtime``) and the
all-in-one ``logwarden up``, so the probe finds out which one it is probing:

* the first argument, when given (compose passes it: ``logwarden-healthcheck ingest``);
* else the command line of PID 1 (``... logwarden serve NAME``; ``logwarden up`` means gateway).

The port is ``LOGWARDEN_<NAME>_PORT`` when set (the same variable the service reads), else the
default from DESIGN.md §7. Exit status 0 means HTTP 200; anything else, or no answer, is 1.
Standard library only: it runs before, and independently of, the application's imports.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DEFAULT_PORTS = {"gateway": 8000, "ingest": 8001, "query": 8002, "realtime": 8003}
TIMEOUT_SECONDS = 4.0


def service_from_cmdline(cmdline: bytes) -> str:
    """The service a NUL-separated command line runs; ``gateway`` when it names none."""
    args = [part.decode(errors="replace") for part in cmdline.split(b"\0") if part]
    for index, arg in enumerate(args[:-1]):
        if arg == "serve" and args[index + 1] in DEFAULT_PORTS:
            return args[index + 1]
    return "gateway"


def service_port(name: str, environ: Mapping[str, str] = os.environ) -> int:
    """The port ``name`` listens on, as the service itself derives it from the environment."""
    if name not in DEFAULT_PORTS:
        raise ValueError(f"unknown service {name!r}; expected one of {sorted(DEFAULT_PORTS)}")
    value = environ.get(f"LOGWARDEN_{name.upper()}_PORT")
    return int(value) if value else DEFAULT_PORTS[name]


def probe(port: int, host: str = "127.0.0.1", timeout: float = TIMEOUT_SECONDS) -> bool:
    """True when GET http://host:port/health/live answers 200."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health/live", timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        name = argv[1]
    else:
        try:
            name = service_from_cmdline(Path("/proc/1/cmdline").read_bytes())
        except OSError:
            name = "gateway"
    try:
        port = service_port(name)
    except ValueError as exc:
        print(f"logwarden-healthcheck: {exc}", file=sys.stderr)
        return 2
    if probe(port):
        return 0
    print(f"logwarden-healthcheck: {name} on port {port} is not live", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
