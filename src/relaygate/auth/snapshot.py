"""The key cache's snapshot on disk: what lets a gateway serve known keys while PostgreSQL is down.

The file holds what the database holds, hashes only (key hashes, admin token hashes, limits,
revocations), never a raw key or token. It is written to a private temporary name (mode 0600),
fsynced and renamed over the old one, so a reader sees a whole snapshot or the previous one.
A file another user could have written is refused: loading it would let them plant a key.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from relaygate.store.records import KeyRecord

logger = logging.getLogger("relaygate.auth")

SNAPSHOT_FILE = "key-snapshot.json"
FORMAT = 1
_DATETIME_FIELDS = ("expires_at", "created_at", "revoked_at")


@dataclass(frozen=True, slots=True)
class KeySnapshot:
    records: tuple[KeyRecord, ...]
    admin_hashes: tuple[str, ...]
    saved_at: datetime


def save_snapshot(path: Path, records: Sequence[KeyRecord], admin_hashes: Sequence[str]) -> None:
    """Replace the snapshot at ``path`` atomically; the file is readable by its owner only."""
    payload = {
        "format": FORMAT,
        "saved_at": datetime.now(UTC).isoformat(),
        "admin_token_hashes": list(admin_hashes),
        "keys": [_record_json(r) for r in records],
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    staged = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: never open a file (or a planted symlink) that already exists.
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, orjson.dumps(payload))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staged, path)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def load_snapshot(path: Path) -> KeySnapshot | None:
    """The snapshot at ``path``; None (logged) when there is none or it cannot be trusted."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.error("key snapshot %s cannot be opened: %s", path, exc)
        return None
    try:
        info = os.fstat(fd)
        if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            logger.error("key snapshot %s is not private to this user; ignored", path)
            return None
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = orjson.loads(handle.read())
        return _parse(data)
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        logger.error("key snapshot %s is unreadable; ignored: %s", path, exc)
        return None
    finally:
        os.close(fd)


def _record_json(record: KeyRecord) -> dict[str, Any]:
    data = asdict(record)
    data["allowed_models"] = list(record.allowed_models)
    for name in _DATETIME_FIELDS:
        value = data[name]
        data[name] = value.isoformat() if value is not None else None
    return data


def _parse(data: Any) -> KeySnapshot:
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown snapshot format {data.get('format')!r}")
    records = []
    for item in data["keys"]:
        fields = dict(item)
        fields["allowed_models"] = tuple(fields["allowed_models"])
        for name in _DATETIME_FIELDS:
            value = fields[name]
            fields[name] = datetime.fromisoformat(value) if value is not None else None
        records.append(KeyRecord(**fields))
    admin_hashes = tuple(str(h) for h in data["admin_token_hashes"])
    return KeySnapshot(tuple(records), admin_hashes, datetime.fromisoformat(data["saved_at"]))
