"""Gateway keys and admin tokens: generation, hashing, and finding the key in request headers."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from relaygate.store.records import KeyRecord

API_KEY_PREFIX = "rg-"
ADMIN_TOKEN_PREFIX = "rgadmin-"  # noqa: S105 (a prefix, not a secret)
# 30 random bytes -> exactly 40 url-safe base64 characters, no padding (240 bits of entropy).
_RANDOM_BYTES = 30
DISPLAY_PREFIX_LENGTH = 8


def generate_api_key() -> str:
    """A new gateway key: ``rg-`` + 40 random url-safe characters."""
    return API_KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def generate_admin_token() -> str:
    """A new admin token: ``rgadmin-`` + 40 random url-safe characters."""
    return ADMIN_TOKEN_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def hash_key(key: str) -> str:
    """The sha256 hex digest stored in place of a key or admin token.

    A plain hash is enough (no bcrypt/scrypt): the keys are 240-bit random strings, so there is
    no dictionary to guess from, and a fast hash keeps the per-request check in microseconds.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters of a key, stored in clear so people can tell keys apart."""
    return key[:DISPLAY_PREFIX_LENGTH]


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly generated key: ``raw_key`` is shown once; only the hash and prefix are stored."""

    raw_key: str
    key_hash: str
    key_prefix: str


def new_api_key() -> NewKey:
    """Generate a gateway key together with what the store keeps of it."""
    raw = generate_api_key()
    return NewKey(raw_key=raw, key_hash=hash_key(raw), key_prefix=display_prefix(raw))


def extract_api_key(headers: Mapping[str, str]) -> str | None:
    """The key from ``x-api-key``, else from ``Authorization: Bearer``; None when neither is set.

    ``headers`` must be case-insensitive or lower-cased (Starlette's ``Headers`` is).
    """
    key = (headers.get("x-api-key") or "").strip()
    if key:
        return key
    return bearer_token(headers)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when absent or another scheme."""
    authorization = headers.get("authorization")
    if not authorization:
        return None
    if authorization.startswith("Bearer "):  # what every SDK sends: no split, no lower-casing
        return authorization[7:].strip() or None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def key_status(record: KeyRecord, now: datetime) -> str:
    """One word for a key: revoked, disabled, expired or active."""
    if record.revoked:
        return "revoked"
    if record.disabled:
        return "disabled"
    if record.is_expired(now):
        return "expired"
    return "active"
