"""The operator CLI (``logwarden user ...`` / ``logwarden key ...``) run as real processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable

import httpx
from fastapi import FastAPI

from shared.settings import Settings
from tests.gateway.conftest import ADMIN_USERNAME, Login
from tests.helpers import repo_root

RUNNER = """
import argparse, sys
from services.gateway.auth.cli import add_key_parser, add_user_parser
parser = argparse.ArgumentParser(prog="logwarden")
commands = parser.add_subparsers(dest="command", required=True)
add_user_parser(commands)
add_key_parser(commands)
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


async def cli(settings: Settings, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process against the same data dir and Redis as the gateway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGWARDEN_")}
    env.update(
        {
            "LOGWARDEN_DATA_DIR": str(settings.data_dir),
            "LOGWARDEN_REDIS_URL": settings.redis_url or "",
            "LOGWARDEN_INTERNAL_TOKEN": settings.internal_token.get_secret_value(),
            "PYTHONPATH": str(repo_root()),
        }
    )
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", RUNNER, *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=repo_root(),
        timeout=60,
    )


async def test_user_commands(
    gateway: FastAPI, gateway_settings: Settings, login: Login, clients: Callable[..., httpx.AsyncClient]
) -> None:
    """create (password on stdin), list, passwd ends sessions, disable locks out, last admin kept."""
    created = await cli(
        gateway_settings,
        "user",
        "create",
        "alice",
        "--role",
        "analyst",
        "--password-stdin",
        stdin="alice-long-password\n",
    )
    assert created.returncode == 0, created.stderr
    assert "alice-long-password" not in created.stdout + created.stderr
    listing = await cli(gateway_settings, "user", "list")
    assert listing.returncode == 0
    assert any("alice" in line and "analyst" in line and "active" in line for line in listing.stdout.splitlines())

    session = await login("alice", "alice-long-password")
    assert (await session.get("/api/auth/me")).status_code == 200
    changed = await cli(gateway_settings, "user", "passwd", "alice", "--password-stdin", stdin="alice-new-password\n")
    assert changed.returncode == 0, changed.stderr
    assert (await session.get("/api/auth/me")).status_code == 401
    session = await login("alice", "alice-new-password")

    disabled = await cli(gateway_settings, "user", "disable", "alice")
    assert disabled.returncode == 0, disabled.stderr
    assert (await session.get("/api/auth/me")).status_code == 401
    refused = await clients().post("/api/auth/login", json={"username": "alice", "password": "alice-new-password"})
    assert refused.status_code == 401

    last = await cli(gateway_settings, "user", "disable", ADMIN_USERNAME)
    assert last.returncode == 1 and "last active admin" in last.stderr
    duplicate = await cli(gateway_settings, "user", "create", "ALICE", "--password-stdin", stdin="x" * 20 + "\n")
    assert duplicate.returncode == 1
    weak = await cli(gateway_settings, "user", "create", "bob", "--password-stdin", stdin="short\n")
    assert weak.returncode == 1 and await gateway.state.meta.get_user_by_username("bob") is None


async def test_password_is_never_taken_from_argv(gateway_settings: Settings, gateway: FastAPI) -> None:
    """There is no --password option: argparse refuses it."""
    result = await cli(gateway_settings, "user", "create", "carl", "--password", "carl-long-password")
    assert result.returncode == 2
    assert await gateway.state.meta.get_user_by_username("carl") is None


async def test_key_commands(
    gateway: FastAPI, gateway_settings: Settings, clients: Callable[..., httpx.AsyncClient]
) -> None:
    """key create prints the key once (stdout is only the key); list hides it; revoke is immediate."""
    created = await cli(
        gateway_settings,
        "key",
        "create",
        "--name",
        "fluentbit",
        "--scope",
        "ingest",
        "--scope",
        "read",
        "--tenant",
        "acme",
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("lw_") and "\n" not in key
    shipper = clients(headers={"Authorization": f"Bearer {key}"})
    me = (await shipper.get("/api/auth/me")).json()
    assert me["kind"] == "key" and me["tenant_id"] == "acme" and me["scopes"] == ["ingest", "read"]
    listing = await cli(gateway_settings, "key", "list")
    assert listing.returncode == 0 and "fluentbit" in listing.stdout
    assert key.split("_", 2)[2] not in listing.stdout
    prefix = key.split("_")[1]
    revoked = await cli(gateway_settings, "key", "revoke", prefix)
    assert revoked.returncode == 0, revoked.stderr
    assert (await shipper.get("/api/auth/me")).status_code == 401
    again = await cli(gateway_settings, "key", "revoke", prefix)
    assert again.returncode == 1
    admin_tenant = await cli(gateway_settings, "key", "create", "--name", "x", "--scope", "admin", "--tenant", "t")
    assert admin_tenant.returncode == 1
