"""Operator commands: ``logwarden user create|passwd|list|disable|enable`` and ``logwarden key create|list|revoke``.

They work on the metadata store directly (no running gateway needed).
Passwords are read from the terminal (getpass) or one line of stdin with
``--password-stdin``, never from argv where ``ps`` and shell history would see
them. A new key is printed once. Password changes end the user's sessions at
their next request (sessions are bound to the password hash) and disabled users
are refused at once (every request re-reads the user).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any, get_args

from pydantic import ValidationError

from services.gateway.auth.schemas import ApiKeyCreate, UserCreate, UserUpdate
from services.gateway.auth.service import LastAdminError, create_api_key, create_user, update_user
from shared.settings import Settings
from shared.store.base import DuplicateError, MetaStore
from shared.store.factory import create_meta_store
from shared.store.records import Role, Scope

Handler = Callable[[argparse.Namespace, MetaStore], Awaitable[int]]


def _fail(message: str) -> int:
    print(f"logwarden: {message}", file=sys.stderr)
    return 1


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap an async handler: load settings, open the MetaStore, run, close."""

    def run(args: argparse.Namespace) -> int:
        try:
            settings = Settings()
        except ValidationError as exc:
            first = exc.errors()[0]
            field = ".".join(str(p) for p in first["loc"])
            return _fail(f"invalid setting LOGWARDEN_{field.upper()}: {first['msg']}")

        async def main() -> int:
            meta = create_meta_store(settings)
            await meta.open()
            try:
                return await handler(args, meta)
            finally:
                await meta.close()

        return asyncio.run(main())

    return run


def read_password(args: argparse.Namespace) -> str | None:
    """The new password: one line of stdin with --password-stdin, else asked twice on the terminal."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") or None
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        print("logwarden: the passwords differ", file=sys.stderr)
        return None
    return first


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


# --- users ---------------------------------------------------------------------


async def _user_create(args: argparse.Namespace, meta: MetaStore) -> int:
    password = read_password(args)
    if password is None:
        return _fail("no password given")
    try:
        data = UserCreate(username=args.username, email=args.email, password=password, role=args.role)
    except ValidationError as exc:
        return _fail(_validation_message(exc))
    try:
        user = await create_user(meta=meta, data=data)
    except DuplicateError:
        return _fail(f"user {args.username!r} (or that email) already exists")
    print(f"created {user.role} {user.username} ({user.id})")
    return 0


async def _user_update(args: argparse.Namespace, meta: MetaStore, **changes: Any) -> int:
    user = await meta.get_user_by_username(args.username)
    if user is None:
        return _fail(f"no user {args.username!r}")
    try:
        data = UserUpdate(**changes)
        await update_user(meta=meta, redis=None, user=user, data=data)
    except ValidationError as exc:
        return _fail(_validation_message(exc))
    except LastAdminError:
        return _fail(f"{user.username} is the last active admin")
    return 0


async def _user_passwd(args: argparse.Namespace, meta: MetaStore) -> int:
    password = read_password(args)
    if password is None:
        return _fail("no password given")
    code = await _user_update(args, meta, password=password)
    if code == 0:
        print(f"password of {args.username} changed; their sessions are ended")
    return code


async def _user_disable(args: argparse.Namespace, meta: MetaStore) -> int:
    code = await _user_update(args, meta, disabled=True)
    if code == 0:
        print(f"disabled {args.username}")
    return code


async def _user_enable(args: argparse.Namespace, meta: MetaStore) -> int:
    code = await _user_update(args, meta, disabled=False)
    if code == 0:
        print(f"enabled {args.username}")
    return code


async def _user_list(args: argparse.Namespace, meta: MetaStore) -> int:
    del args
    print(f"{'ID':<26}  {'USERNAME':<24}  {'ROLE':<8}  {'STATE':<8}  LAST LOGIN")
    for user in await meta.list_users():
        state = "disabled" if user.disabled else "active"
        last = user.last_login.isoformat() if user.last_login else "-"
        print(f"{user.id:<26}  {user.username:<24}  {user.role:<8}  {state:<8}  {last}")
    return 0


def add_user_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``logwarden user create|passwd|list|disable|enable`` on an argparse subparsers object."""
    user = subparsers.add_parser("user", help="manage dashboard users")
    commands = user.add_subparsers(dest="user_command", required=True)

    create = commands.add_parser("create", help="create a user (password from the terminal or stdin)")
    create.add_argument("username")
    create.add_argument("--role", choices=get_args(Role), default="viewer")
    create.add_argument("--email", default=None)
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    create.set_defaults(handler=_run(_user_create))

    passwd = commands.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd.set_defaults(handler=_run(_user_passwd))

    listing = commands.add_parser("list", help="list users")
    listing.set_defaults(handler=_run(_user_list))

    disable = commands.add_parser("disable", help="lock a user out at once")
    disable.add_argument("username")
    disable.set_defaults(handler=_run(_user_disable))

    enable = commands.add_parser("enable", help="let a disabled user log in again")
    enable.add_argument("username")
    enable.set_defaults(handler=_run(_user_enable))
    return user


# --- keys -----------------------------------------------------------------------


async def _key_create(args: argparse.Namespace, meta: MetaStore) -> int:
    try:
        data = ApiKeyCreate(name=args.name, scopes=args.scope, tenant_id=args.tenant)
    except ValidationError as exc:
        return _fail(_validation_message(exc))
    record, key = await create_api_key(meta=meta, data=data, created_by="cli")
    print(
        f"created key {record.id} ({record.name}, scopes {','.join(record.scopes)}"
        f"{', tenant ' + record.tenant_id if record.tenant_id else ''})",
        file=sys.stderr,
    )
    print("store it now, it is not shown again:", file=sys.stderr)
    print(key)
    return 0


async def _key_list(args: argparse.Namespace, meta: MetaStore) -> int:
    del args
    print(f"{'ID':<26}  {'PREFIX':<8}  {'NAME':<24}  {'SCOPES':<18}  {'TENANT':<12}  LAST USED")
    for key in await meta.list_api_keys():
        last = key.last_used_at.isoformat() if key.last_used_at else "-"
        print(
            f"{key.id:<26}  {key.prefix:<8}  {key.name:<24}  {','.join(key.scopes):<18}  "
            f"{key.tenant_id or '-':<12}  {last}"
        )
    return 0


async def _key_revoke(args: argparse.Namespace, meta: MetaStore) -> int:
    target = args.key
    matches = [k for k in await meta.list_api_keys() if target in (k.id, k.prefix)]
    if not matches:
        return _fail(f"no key with id or prefix {target!r}")
    for key in matches:
        await meta.delete_api_key(key.id)
        print(f"revoked {key.id} ({key.name})")
    return 0


def add_key_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``logwarden key create|list|revoke`` on an argparse subparsers object."""
    key = subparsers.add_parser("key", help="manage API keys")
    commands = key.add_subparsers(dest="key_command", required=True)

    create = commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--scope", action="append", choices=get_args(Scope), required=True, help="repeatable: ingest, read, admin"
    )
    create.add_argument("--tenant", default=None, help="restrict the key to one tenant_id")
    create.set_defaults(handler=_run(_key_create))

    listing = commands.add_parser("list", help="list keys (never their secrets)")
    listing.set_defaults(handler=_run(_key_list))

    revoke = commands.add_parser("revoke", help="revoke a key by id or prefix (immediate)")
    revoke.add_argument("key", help="key id or prefix")
    revoke.set_defaults(handler=_run(_key_revoke))
    return key
