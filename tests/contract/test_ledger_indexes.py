"""The ledger's indexes, on both backends: an insert pays for every index entry, so the
end-user (and, on PostgreSQL, tag) indexes hold only rows that name an end user (carry tags),
and the queries that filter on them must still find them usable."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.contract.test_ledger_store import row

from relaygate.store import LedgerStore, UsageFilter
from relaygate.store.postgres.ledger_queries import USAGE_SQL as POSTGRES_SQL
from relaygate.store.postgres.ledger_store import PostgresLedgerStore
from relaygate.store.sqlite.ledger_queries import USAGE_SQL as SQLITE_SQL
from relaygate.store.sqlite.ledger_store import SqliteLedgerStore


async def _stored(ledger: LedgerStore) -> None:
    rows = [row() for _ in range(40)]
    rows += [dataclasses.replace(row(), end_user=f"user-{n}") for n in range(3)]
    rows += [dataclasses.replace(row(), tags={"team": "red"}) for _ in range(2)]
    assert await ledger.insert_rows(rows) == len(rows)


async def _sqlite(ledger: SqliteLedgerStore, sql: str, params: Any = ()) -> list[Any]:
    async with ledger._db.reading() as conn, conn.execute(sql, params) as cursor:
        return list(await cursor.fetchall())


async def _postgres(ledger: PostgresLedgerStore, sql: str, *params: Any) -> list[Any]:
    async with ledger._db.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # a small table: make it choose
        return list(await conn.fetch(sql, *params))


async def test_rows_without_an_end_user_stay_out_of_its_index(ledger: LedgerStore) -> None:
    await _stored(ledger)
    user = UsageFilter(end_user="user-1")
    recent, recent_params = (
        SQLITE_SQL if isinstance(ledger, SqliteLedgerStore) else POSTGRES_SQL
    ).recent_rows(10, user)
    assert [r.end_user for r in await ledger.recent_rows(10, where=user)] == ["user-1"]
    if isinstance(ledger, SqliteLedgerStore):
        # A partial index; SQLite reads one only where the query implies its condition, as
        # ``end_user = ?`` does.
        found = await _sqlite(
            ledger, "SELECT sql FROM sqlite_master WHERE name = 'usage_ledger_user_created'"
        )
        assert " ".join(found[0][0].split()).endswith("WHERE end_user IS NOT NULL")
        plan = await _sqlite(ledger, f"EXPLAIN QUERY PLAN {recent}", recent_params)
        assert "usage_ledger_user_created" in " ".join(str(step[-1]) for step in plan)
    else:
        assert isinstance(ledger, PostgresLedgerStore)
        found = await _postgres(
            ledger,
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'usage_ledger'"
            " AND indexname IN ('usage_ledger_user_created', 'usage_ledger_tags')"
            " AND schemaname = current_schema()",
        )
        definitions = {name: definition for name, definition in found}
        assert definitions["usage_ledger_user_created"].endswith("WHERE (end_user IS NOT NULL)")
        assert definitions["usage_ledger_tags"].endswith("WHERE (tags IS NOT NULL)")
        for where in (user, UsageFilter(tag=("team", "red"))):
            sql, params = POSTGRES_SQL.recent_rows(10, where)
            shown = " ".join(r[0] for r in await _postgres(ledger, f"EXPLAIN {sql}", *params))
            name = "user_created" if where.end_user else "tags"
            assert f"usage_ledger_{name}" in shown, shown
        tagged = await ledger.recent_rows(10, where=UsageFilter(tag=("team", "red")))
        assert len(tagged) == 2
