"""``KeyStore`` on PostgreSQL: shared by several gateway processes or machines."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from relaygate.store.errors import DuplicateNameError, StoreError
from relaygate.store.lifecycle import DatabaseOwner
from relaygate.store.postgres import queries
from relaygate.store.postgres.connection import PostgresDatabase
from relaygate.store.records import KeyRecord, KeySpec, apply_changes


class PostgresKeyStore(DatabaseOwner[PostgresDatabase]):
    """Gateway keys and admin tokens in PostgreSQL, through a small asyncpg pool."""

    def __init__(self, dsn: str) -> None:
        self._db = PostgresDatabase(dsn)

    async def create_key(self, spec: KeySpec) -> KeyRecord:
        async with self._db.transaction() as conn:
            return await _insert_key(conn, spec)

    async def get_key_by_name(self, name: str) -> KeyRecord | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(queries.SELECT_KEY_BY_NAME, name)
        return None if row is None else _record(row)

    async def list_keys(self) -> list[KeyRecord]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(queries.SELECT_ALL_KEYS)
        return [_record(row) for row in rows]

    async def count_keys(self) -> int:
        return int(await self._scalar(queries.COUNT_KEYS))

    async def revoke_key(self, name: str) -> bool:
        async with self._db.transaction() as conn:
            status = await conn.execute(queries.REVOKE_KEY, _utc_now(), name)
            if status == "UPDATE 0":
                return False
            await conn.execute(queries.BUMP_KEYS_VERSION)
        return True

    async def update_key(self, name: str, **changes: object) -> KeyRecord | None:
        async with self._db.transaction() as conn:
            row = await conn.fetchrow(queries.SELECT_KEY_BY_NAME_FOR_UPDATE, name)
            if row is None:
                return None
            new = apply_changes(_record(row), changes)
            row = await conn.fetchrow(queries.UPDATE_KEY, *_update_params(new))
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
        async with self._db.connection() as conn:
            rows = await conn.fetch(queries.SELECT_ADMIN_TOKEN_HASHES)
        return [str(row[0]) for row in rows]

    async def bootstrap(self, admin_token_hash: str, spec: KeySpec) -> KeyRecord | None:
        async with self._db.transaction() as conn:
            await conn.execute(queries.LOCK_COUNTERS)
            if not await conn.fetchval(queries.IS_EMPTY):
                return None
            await _insert_admin_token(conn, admin_token_hash)
            return await _insert_key(conn, spec)

    async def _scalar(self, sql: str) -> Any:
        async with self._db.connection() as conn:
            value = await conn.fetchval(sql)
        if value is None:
            raise StoreError("the PostgreSQL schema is incomplete: a counter row is missing")
        return value


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _money(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(repr(value))


def _float(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


async def _insert_key(conn: Any, spec: KeySpec) -> KeyRecord:
    row = await conn.fetchrow(
        queries.INSERT_KEY,
        uuid.uuid4(),
        spec.name,
        spec.key_hash,
        spec.key_prefix,
        spec.owner,
        spec.team,
        list(spec.allowed_models),
        spec.priority,
        spec.rps,
        spec.burst,
        spec.rpm,
        spec.tpm,
        spec.max_concurrent,
        _money(spec.monthly_budget_usd),
        _money(spec.balance_usd),
        spec.expires_at,
        _utc_now(),
    )
    if row is None:
        raise DuplicateNameError(spec.name)
    await conn.execute(queries.BUMP_KEYS_VERSION)
    return _record(row)


async def _insert_admin_token(conn: Any, token_hash: str) -> None:
    await conn.execute(queries.INSERT_ADMIN_TOKEN, uuid.uuid4(), token_hash, _utc_now())
    await conn.execute(queries.BUMP_KEYS_VERSION)


def _update_params(new: KeyRecord) -> tuple[object, ...]:
    return (
        new.owner,
        new.team,
        list(new.allowed_models),
        new.priority,
        new.rps,
        new.burst,
        new.rpm,
        new.tpm,
        new.max_concurrent,
        _money(new.monthly_budget_usd),
        _money(new.balance_usd),
        new.expires_at,
        new.disabled,
        _utc_now(),
        uuid.UUID(new.id),
    )


def _record(row: Sequence[Any]) -> KeyRecord:
    return KeyRecord(
        id=str(row[0]),
        name=row[1],
        key_hash=row[2],
        key_prefix=row[3],
        owner=row[4],
        team=row[5],
        allowed_models=tuple(row[6]),
        priority=int(row[7]),
        rps=row[8],
        burst=row[9],
        rpm=row[10],
        tpm=row[11],
        max_concurrent=row[12],
        monthly_budget_usd=_float(row[13]),
        balance_usd=_float(row[14]),
        expires_at=row[15],
        disabled=bool(row[16]),
        created_at=row[17],
        revoked_at=row[18],
    )
