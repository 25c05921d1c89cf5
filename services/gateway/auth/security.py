"""Primitives: password hashing, API key format and hashing, tokens, safe redirects."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import string
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

KEY_PREFIX: Final = "lw_"
_KEY_ID_LENGTH: Final = 8
_KEY_ID_ALPHABET: Final = frozenset(string.ascii_lowercase + string.digits)
_KEY_SECRET_BYTES: Final = 32
MIN_PASSWORD_LENGTH: Final = 12
MAX_PASSWORD_LENGTH: Final = 1024

_hasher = PasswordHasher()
# Verified when the username is unknown (or disabled) so that a failed login
# costs the same time whether or not the account exists.
_DUMMY_HASH: Final = _hasher.hash(secrets.token_urlsafe(24))


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (CPU-bound: call :func:`hash_password_async` on the loop)."""
    return _hasher.hash(password)


async def hash_password_async(password: str) -> str:
    """:func:`hash_password` on a worker thread, so the event loop keeps serving."""
    return await asyncio.to_thread(hash_password, password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches ``password_hash``; always spends one argon2 verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password_async(password_hash: str | None, password: str) -> bool:
    """:func:`verify_password` on a worker thread."""
    return await asyncio.to_thread(verify_password, password_hash, password)


def password_needs_rehash(password_hash: str) -> bool:
    """Whether the hash was made with older parameters than the current hasher's."""
    try:
        return _hasher.check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True


def random_token() -> str:
    """An unguessable opaque token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    """Hex SHA-256 of a string (used to key Redis entries by secrets without storing them)."""
    return hashlib.sha256(value.encode()).hexdigest()


def constant_time_equals(left: str | None, right: str | None) -> bool:
    """Compare two secrets without leaking where they differ."""
    if not left or not right:
        return False
    return hmac.compare_digest(left.encode(), right.encode())


@dataclass(frozen=True, slots=True)
class NewApiKey:
    """A freshly generated key: the full secret (shown once) and what is stored."""

    key: str
    prefix: str
    key_hash: str


def generate_api_key() -> NewApiKey:
    """A new key ``lw_<prefix>_<secret>``: 8-char random lookup id, 32-byte URL-safe secret."""
    alphabet = string.ascii_lowercase + string.digits
    prefix = "".join(secrets.choice(alphabet) for _ in range(_KEY_ID_LENGTH))
    secret = secrets.token_urlsafe(_KEY_SECRET_BYTES)
    return NewApiKey(key=f"{KEY_PREFIX}{prefix}_{secret}", prefix=prefix, key_hash=hash_api_key_secret(secret))


def hash_api_key_secret(secret: str) -> str:
    """SHA-256 of a key's secret part.

    A plain fast hash is right here, unlike for passwords: the secret is 256
    random bits, so there is nothing to brute-force or look up in a dictionary
    (slow hashing and salts defend low-entropy human passwords), and a fast hash
    keeps per-request key checks cheap for high-volume shippers.
    """
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_api_key(value: str) -> tuple[str, str] | None:
    """Split ``lw_<prefix>_<secret>`` into (prefix, secret); None when malformed."""
    value = value.strip()
    if not value.startswith(KEY_PREFIX) or len(value) > 256:
        return None
    prefix, sep, secret = value[len(KEY_PREFIX) :].partition("_")
    if not sep or len(prefix) != _KEY_ID_LENGTH or not set(prefix) <= _KEY_ID_ALPHABET or len(secret) < 32:
        return None
    return prefix, secret


def api_key_matches(secret: str, key_hash: str) -> bool:
    """Constant-time check of a presented secret against the stored hash."""
    return hmac.compare_digest(hash_api_key_secret(secret).encode(), key_hash.encode())


def safe_next(value: str | None) -> str:
    """``value`` when it is a local path on this site, else ``"/"`` (no open redirects).

    Allowed: one leading ``/`` followed by anything but another ``/`` or ``\\``;
    no scheme, no backslashes anywhere, no control characters or whitespace
    that browsers strip (``/\\t/evil.example`` becomes ``//evil.example``).
    """
    if not value or len(value) > 2048:
        return "/"
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F or ch in "\\\u2028\u2029\u00a0" for ch in value):
        # Spaces are rejected too: a local path has them percent-encoded.
        return "/"
    if not value.startswith("/") or value.startswith("//"):
        # "//host" is scheme-relative; anything not starting with "/" may carry a scheme.
        return "/"
    return value
