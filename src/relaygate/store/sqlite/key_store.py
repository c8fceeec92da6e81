"""``KeyStore`` on SQLite: the embedded default, one file under the gateway's home."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import aiosqlite
import orjson

from relaygate.store.errors import DuplicateNameError, StoreError
from relaygate.store.lifecycle import DatabaseOwner
from relaygate.store.records import KeyRecord, KeySpec, apply_changes
from relaygate.store.sqlite import queries
from relaygate.store.sqlite.connection import SqliteDatabase, from_text, to_text, utc_now


class SqliteKeyStore(DatabaseOwner[SqliteDatabase]):
    """Gateway keys and admin tokens in SQLite. ``path`` may be ``:memory:`` for tests."""

    def __init__(self, path: str) -> None:
        self._db = SqliteDatabase(path)

    async def create_key(self, spec: KeySpec) -> KeyRecord:
        async with self._db.transaction() as conn:
            return await _insert_key(conn, spec)

    async def get_key_by_name(self, name: str) -> KeyRecord | None:
        async with self._db.reading() as conn:
            row = await _fetch_one(conn, queries.SELECT_KEY_BY_NAME, (name,))
        return None if row is None else _record(row)

    async def list_keys(self) -> list[KeyRecord]:
        async with self._db.reading() as conn, conn.execute(queries.SELECT_ALL_KEYS) as cursor:
            rows = await cursor.fetchall()
        return [_record(row) for row in rows]

    async def count_keys(self) -> int:
        return int(await self._scalar(queries.COUNT_KEYS))

    async def revoke_key(self, name: str) -> bool:
        now = to_text(utc_now())
        async with self._db.transaction() as conn:
            cursor = await conn.execute(queries.REVOKE_KEY, (now, now, name))
            if cursor.rowcount == 0:
                return False
            await conn.execute(queries.BUMP_KEYS_VERSION)
        return True

    async def update_key(self, name: str, **changes: object) -> KeyRecord | None:
        async with self._db.transaction() as conn:
            row = await _fetch_one(conn, queries.SELECT_KEY_BY_NAME, (name,))
            if row is None:
                return None
            new = apply_changes(_record(row), changes)
            row = await _fetch_one(conn, queries.UPDATE_KEY, _update_params(new))
            await conn.execute(queries.BUMP_KEYS_VERSION)
        if row is None:
            raise StoreError(f"key '{name}' vanished during the update")
        return _record(row)

    async def keys_version(self) -> int:
        return int(await self._scalar(queries.SELECT_KEYS_VERSION))

    async def create_admin_token(self, token_hash: str) -> None:
        async with self._db.transaction() as conn:
            await _insert_admin_token(conn, token_hash)

    async def has_admin_token(self) -> bool:
        return bool(await self._scalar(queries.HAS_ADMIN_TOKEN))

    async def list_admin_token_hashes(self) -> list[str]:
        async with (
            self._db.reading() as conn,
            conn.execute(queries.SELECT_ADMIN_TOKEN_HASHES) as cursor,
        ):
            return [str(row[0]) for row in await cursor.fetchall()]

    async def bootstrap(self, admin_token_hash: str, spec: KeySpec) -> KeyRecord | None:
        async with self._db.transaction() as conn:
            empty = await _fetch_one(conn, queries.IS_EMPTY, ())
            if empty is None or not empty[0]:
                return None
            await _insert_admin_token(conn, admin_token_hash)
            return await _insert_key(conn, spec)

    async def _scalar(self, sql: str) -> Any:
        async with self._db.reading() as conn:
            row = await _fetch_one(conn, sql, ())
        if row is None:
            raise StoreError("the SQLite schema is incomplete: a counter row is missing")
        return row[0]


async def _fetch_one(
    conn: aiosqlite.Connection, sql: str, params: Sequence[object]
) -> tuple[Any, ...] | None:
    async with conn.execute(sql, params) as cursor:
        row = await cursor.fetchone()
    return None if row is None else tuple(row)


async def _insert_key(conn: aiosqlite.Connection, spec: KeySpec) -> KeyRecord:
    now = to_text(utc_now())
    params = (
        str(uuid.uuid4()),
        spec.name,
        spec.key_hash,
        spec.key_prefix,
        spec.owner,
        spec.team,
        orjson.dumps(list(spec.allowed_models)).decode(),
        spec.priority,
        spec.rps,
        spec.burst,
        spec.rpm,
        spec.tpm,
        spec.max_concurrent,
        spec.monthly_budget_usd,
        spec.balance_usd,
        to_text(spec.expires_at),
        now,
        now,
    )
    row = await _fetch_one(conn, queries.INSERT_KEY, params)
    if row is None:
        raise DuplicateNameError(spec.name)
    await conn.execute(queries.BUMP_KEYS_VERSION)
    return _record(row)


async def _insert_admin_token(conn: aiosqlite.Connection, token_hash: str) -> None:
    params = (str(uuid.uuid4()), token_hash, to_text(utc_now()))
    await conn.execute(queries.INSERT_ADMIN_TOKEN, params)
    await conn.execute(queries.BUMP_KEYS_VERSION)


def _update_params(new: KeyRecord) -> tuple[object, ...]:
    return (
        new.owner,
        new.team,
        orjson.dumps(list(new.allowed_models)).decode(),
        new.priority,
        new.rps,
        new.burst,
        new.rpm,
        new.tpm,
        new.max_concurrent,
        new.monthly_budget_usd,
        new.balance_usd,
        to_text(new.expires_at),
        int(new.disabled),
        to_text(utc_now()),
        new.id,
    )


def _record(row: Sequence[Any]) -> KeyRecord:
    created_at = from_text(row[17])
    if created_at is None:
        raise StoreError("api_keys.created_at is NULL")
    return KeyRecord(
        id=row[0],
        name=row[1],
        key_hash=row[2],
        key_prefix=row[3],
        owner=row[4],
        team=row[5],
        allowed_models=tuple(orjson.loads(row[6])),
        priority=int(row[7]),
        rps=row[8],
        burst=row[9],
        rpm=row[10],
        tpm=row[11],
        max_concurrent=row[12],
        monthly_budget_usd=row[13],
        balance_usd=row[14],
        expires_at=from_text(row[15]),
        disabled=bool(row[16]),
        created_at=created_at,
        revoked_at=from_text(row[18]),
    )
