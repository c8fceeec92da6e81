"""First start: with no keys and no admin token, create one of each and hand them over once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from relaygate.auth.keys import generate_admin_token, hash_key, new_api_key
from relaygate.store.protocols import KeyStore
from relaygate.store.records import KeyRecord, KeySpec

CREDENTIALS_FILE = "first-run-credentials.txt"
DEFAULT_KEY_NAME = "default"


@dataclass(frozen=True, slots=True)
class BootstrapResult:
    """The credentials made on first start; the server prints them once and never again."""

    api_key: str
    admin_token: str
    key: KeyRecord
    path: Path


async def bootstrap_if_empty(store: KeyStore, home: Path) -> BootstrapResult | None:
    """Create an admin token and a key named "default" when the store has neither.

    Both are also written to ``home/first-run-credentials.txt`` (mode 0600, directory 0700). The
    file is written to a private temporary name first and moved into place only after the store
    accepted the credentials, so a failed start leaves neither orphan credentials in the database
    nor a file naming credentials that do not exist. Returns None when nothing was created,
    including when another process starting at the same moment bootstrapped first.
    """
    if await store.has_admin_token() or await store.count_keys():
        return None
    admin_token = generate_admin_token()
    material = new_api_key()
    spec = KeySpec(
        name=DEFAULT_KEY_NAME,
        key_hash=material.key_hash,
        key_prefix=material.key_prefix,
        owner="admin",
    )
    path = home / CREDENTIALS_FILE
    text = _credentials_text(material.raw_key, admin_token)
    staged = await asyncio.to_thread(_stage_private_file, home, text)
    try:
        record = await store.bootstrap(hash_key(admin_token), spec)
        if record is None:
            return None
        await asyncio.to_thread(os.replace, staged, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(os.unlink, staged)
    return BootstrapResult(api_key=material.raw_key, admin_token=admin_token, key=record, path=path)


def _credentials_text(api_key: str, admin_token: str) -> str:
    created = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        f"# relaygate first-run credentials, created {created}.\n"
        "# They are not stored anywhere else in clear: copy them somewhere safe, then delete\n"
        "# this file.\n"
        f"RELAYGATE_API_KEY={api_key}\n"
        f"RELAYGATE_ADMIN_TOKEN={admin_token}\n"
    )


def _stage_private_file(home: Path, text: str) -> Path:
    """Write ``text`` to a new owner-only file in ``home`` and return its path."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    staged = home / f".{CREDENTIALS_FILE}.{secrets.token_hex(6)}.tmp"
    # O_EXCL: never open a file (or a planted symlink) that already exists.
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return staged
