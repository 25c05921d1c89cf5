"""``logwarden up``: the embedded platform in one command.

Starts redis-server (unless ``LOGWARDEN_REDIS_URL`` is set) on a unix socket in
the data dir, then the four services as child processes; waits until the
platform is healthy, restarts a crashed service with backoff, and stops
everything on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx
from pydantic import ValidationError

from shared.settings import SERVICE_NAMES, Settings

#: Exit code of `logwarden serve` when its settings are invalid: restarting cannot help.
CONFIG_ERROR_EXIT = 2
_UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
_RESTART_BACKOFF_MAX = 30.0
_STABLE_AFTER = 60.0


class StartupError(Exception):
    """A problem the operator must fix; the message says what to do (one line)."""


def say(message: str) -> None:
    """Print a status line for the operator."""
    print(f"logwarden: {message}", file=sys.stderr, flush=True)


def load_or_create_internal_token(data_dir: Path) -> str:
    """The internal token kept in ``data_dir/secrets.json`` (created 0600 on first start)."""
    path = data_dir / "secrets.json"
    if path.exists():
        token = json.loads(path.read_text()).get("internal_token")
        if isinstance(token, str) and len(token) >= 32:
            return token
    data_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"internal_token": token}, handle)
    return token


def prepare_environment(environ: dict[str, str]) -> dict[str, str]:
    """Environment for the children: absolute data dir and an internal token."""
    env = dict(environ)
    data_dir = Path(env.get("LOGWARDEN_DATA_DIR", "data")).resolve()
    env["LOGWARDEN_DATA_DIR"] = str(data_dir)
    if not env.get("LOGWARDEN_INTERNAL_TOKEN"):
        env["LOGWARDEN_INTERNAL_TOKEN"] = load_or_create_internal_token(data_dir)
    return env


def check_ports_free(settings: Settings) -> None:
    """Refuse to start when one of our ports is taken, saying which setting moves it."""
    wanted = [(f"LOGWARDEN_{n.upper()}_PORT", settings.service_port(n), socket.SOCK_STREAM) for n in SERVICE_NAMES]
    if settings.tcp_port:
        wanted.append(("LOGWARDEN_TCP_PORT", settings.tcp_port, socket.SOCK_STREAM))
    if settings.syslog_port:
        wanted.append(("LOGWARDEN_SYSLOG_PORT", settings.syslog_port, socket.SOCK_STREAM))
        wanted.append(("LOGWARDEN_SYSLOG_PORT", settings.syslog_port, socket.SOCK_DGRAM))
    for variable, port, kind in wanted:
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((settings.bind_host, port))
            except OSError:
                raise StartupError(
                    f"port {port} on {settings.bind_host} is in use: stop what uses it or set {variable} to a free port"
                ) from None


def start_redis(settings: Settings) -> subprocess.Popen[bytes]:
    """Start the embedded redis-server (AOF on) on a unix socket in the data dir."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartupError(
            "redis-server not found: install it (Debian/Ubuntu: apt-get install redis-server) "
            "or set LOGWARDEN_REDIS_URL to an existing Redis"
        )
    sock = settings.redis_socket_path
    if len(str(sock)) > _UNIX_SOCKET_MAX:
        raise StartupError(
            f"data dir path too long for a unix socket ({sock}): set LOGWARDEN_DATA_DIR to a shorter path"
        )
    sock.parent.mkdir(parents=True, exist_ok=True)
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--dir",
            str(sock.parent),
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            error = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
            raise StartupError(f"redis-server exited at start: {error.splitlines()[-1] if error else proc.returncode}")
        if _redis_socket_answers(sock):
            return proc
        time.sleep(0.05)
    proc.kill()
    raise StartupError("redis-server did not answer within 15 s")


def _redis_socket_answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(0.5)
            client.connect(str(path))
            client.sendall(b"PING\r\n")
            return client.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Child:
    """One supervised service process."""

    name: str
    command: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = 1.0
    restart_at: float | None = None
    exit_codes: list[int] = field(default_factory=list)

    def start(self) -> None:
        """Spawn the process."""
        self.proc = subprocess.Popen(self.command, env=self.env)
        self.started_at = time.monotonic()
        self.restart_at = None


def terminate_all(processes: list[subprocess.Popen[bytes]], *, grace: float = 10.0) -> None:
    """SIGTERM every process, then SIGKILL what is still alive after ``grace`` seconds."""
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + grace
    for proc in processes:
        remaining = max(0.0, deadline - time.monotonic())
        try:
            proc.wait(remaining)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_healthy(
    settings: Settings, children: list[Child], *, timeout: float, stopping: Callable[[], bool]
) -> dict[str, object] | None:
    """Poll the gateway's ``/api/health`` until healthy, supervising the children meanwhile.

    A service that crashes while starting is restarted like at any other time; one
    that refuses its settings stops the start at once. Returns None when asked to
    stop first; StartupError on timeout.
    """
    url = f"http://127.0.0.1:{settings.gateway_port}/api/health"
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if stopping():
                return None
            for child in children:
                if child.proc is not None and child.proc.poll() == CONFIG_ERROR_EXIT:
                    raise StartupError(f"the {child.name} service refused its settings (message above)")
            _supervise(children)
            try:
                last = client.get(url).json()
                if last.get("status") == "healthy":
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
    raise StartupError(f"the platform did not become healthy within {timeout:.0f} s: {json.dumps(last)[:500]}")


def print_first_admin(settings: Settings) -> None:
    """Create the first admin if there is no user, printing a generated password once."""
    import asyncio

    from services.gateway.auth.service import ensure_first_admin
    from shared.store.factory import create_meta_store

    async def bootstrap() -> tuple[str, str | None]:
        meta = create_meta_store(settings)
        await meta.open()
        try:
            return await ensure_first_admin(meta=meta, settings=settings)
        finally:
            await meta.close()

    username, password = asyncio.run(bootstrap())
    if password:
        say(f"first admin created: username {username!r}, password {password!r} (shown once; change it after login)")


def run_up(*, health_timeout: float = 60.0) -> int:
    """Run the whole embedded platform until interrupted; returns the exit code.

    The process environment becomes the children's (with the generated internal
    token and the Redis URL added), so every service reads the same settings.
    """
    os.environ.update(prepare_environment(dict(os.environ)))
    stopping = False

    def on_signal(signum: int, _: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    redis_proc: subprocess.Popen[bytes] | None = None
    children: list[Child] = []
    try:
        settings = Settings()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        check_ports_free(settings)
        if not settings.redis_url:
            redis_proc = start_redis(settings)
            os.environ["LOGWARDEN_REDIS_URL"] = settings.effective_redis_url
            settings = Settings()
        print_first_admin(settings)
        command = [sys.executable, "-m", "shared.cli", "serve"]
        children = [Child(name, [*command, name], dict(os.environ)) for name in SERVICE_NAMES]
        for child in children:
            child.start()
        if wait_healthy(settings, children, timeout=health_timeout, stopping=lambda: stopping) is None:
            say("stopping")
            return 0
        say(f"ready: open {settings.public_url}/ (API docs at {settings.public_url}/docs); Ctrl-C stops")
        while not stopping:
            _supervise(children)
            if redis_proc is not None and redis_proc.poll() is not None:
                say(f"redis-server exited (code {redis_proc.returncode}); restarting it")
                redis_proc = start_redis(settings)
            time.sleep(0.25)
        say("stopping")
        return 0
    except StartupError as exc:
        say(f"error: {exc}")
        return 1
    except ValidationError as exc:
        say(f"error: invalid settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
        return 1
    finally:
        terminate_all([c.proc for c in children if c.proc is not None])
        if redis_proc is not None:
            terminate_all([redis_proc])
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _supervise(children: list[Child]) -> None:
    now = time.monotonic()
    for child in children:
        proc = child.proc
        if child.restart_at is not None:
            if now >= child.restart_at:
                say(f"restarting {child.name} (restart #{child.restarts})")
                child.start()
            continue
        if proc is None or proc.poll() is None:
            continue
        code = proc.returncode
        child.exit_codes.append(code)
        if now - child.started_at > _STABLE_AFTER:
            child.backoff = 1.0
        child.restarts += 1
        child.restart_at = now + child.backoff
        say(f"{child.name} exited unexpectedly (code {code}); restarting in {child.backoff:.0f} s")
        child.backoff = min(child.backoff * 2, _RESTART_BACKOFF_MAX)
