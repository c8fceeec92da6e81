"""``LedgerStore`` on PostgreSQL: shared by every gateway process; budgets are exact across them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from relaygate.store.ledger_records import (
    BalanceEntry,
    BudgetCounters,
    GroupBy,
    LedgerRow,
    ReserveAsk,
    SpendDelta,
    UsageFilter,
    UsageGroup,
    budget_counters_from,
    ledger_row_from,
    tags_text,
    usage_group_from,
)
from relaygate.store.lifecycle import DatabaseOwner
from relaygate.store.postgres import ledger_queries as q
from relaygate.store.postgres.connection import PostgresDatabase

FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
CHUNK_ROWS = 250


class PostgresLedgerStore(DatabaseOwner[PostgresDatabase]):
    """The ledger in PostgreSQL through its own small pool (never the key store's)."""

    def __init__(self, dsn: str, *, pool_size: int = 10) -> None:
        self._db = PostgresDatabase(dsn, max_size=pool_size)

    async def insert_rows(self, rows: Sequence[LedgerRow]) -> int:
        inserted = 0
        async with self._db.connection() as conn:
            # Statements of at most CHUNK_ROWS rows: asyncpg encodes the arguments on the event
            # loop, and smaller pieces keep each pause short. Each piece commits on its own;
            # a batch cut short half-way is simply inserted again (rows are idempotent by id).
            for start in range(0, len(rows), CHUNK_ROWS):
                chunk = rows[start : start + CHUNK_ROWS]
                columns = list(zip(*(_row_params(row) for row in chunk), strict=True))
                status = await conn.execute(q.INSERT_ROWS, *columns)
                inserted += int(str(status).rsplit(" ", 1)[-1])
        return inserted

    async def count_rows(self, since: datetime | None = None) -> int:
        async with self._db.connection() as conn:
            if since is None:
                value = await conn.fetchval(q.COUNT_ROWS)
            else:
                value = await conn.fetchval(q.COUNT_ROWS_SINCE, since)
        return int(value)

    async def rows_for_request(self, request_id: str) -> list[LedgerRow]:
        return [
            ledger_row_from(r, r[2]) for r in await self._fetch(q.SELECT_BY_REQUEST, request_id)
        ]

    async def recent_rows(
        self,
        limit: int,
        key_name: str | None = None,
        *,
        where: UsageFilter | None = None,
        offset: int = 0,
    ) -> list[LedgerRow]:
        where = where or UsageFilter(key_name=key_name)
        sql, params = q.USAGE_SQL.recent_rows(limit, where, offset)
        return [ledger_row_from(r, r[2]) for r in await self._fetch(sql, *params)]

    async def usage_groups(
        self,
        by: GroupBy,
        since: datetime | None = None,
        until: datetime | None = None,
        key_name: str | None = None,
        *,
        where: UsageFilter | None = None,
        tag_key: str | None = None,
    ) -> list[UsageGroup]:
        where = where or UsageFilter(key_name=key_name)
        sql, params = q.USAGE_SQL.usage_groups(
            by, since or FAR_PAST, until or FAR_FUTURE, where, tag_key
        )
        return [usage_group_from(row) for row in await self._fetch(sql, *params)]

    async def top_up(
        self, key_name: str, amount_usd: float, kind: str, note: str | None = None
    ) -> BalanceEntry | None:
        now = datetime.now(UTC)
        entry_id = uuid.uuid4()
        amount = Decimal(repr(amount_usd))
        async with self._db.transaction() as conn:
            status = await conn.execute(q.CREDIT_KEY, amount, now, key_name)
            if status == "UPDATE 0":
                return None
            await conn.execute(q.INSERT_BALANCE_ENTRY, entry_id, key_name, amount, kind, note, now)
            await conn.execute(q.BUMP_KEYS_VERSION)
        return BalanceEntry(str(entry_id), key_name, amount_usd, kind, note, now)

    async def balance_entries(self, key_name: str) -> list[BalanceEntry]:
        rows = await self._fetch(q.SELECT_BALANCE_ENTRIES, key_name)
        return [BalanceEntry(str(r[0]), r[1], float(r[2]), r[3], r[4], r[5]) for r in rows]

    async def load_budgets(self, month: str) -> list[BudgetCounters]:
        return [budget_counters_from(row) for row in await self._fetch(q.SELECT_BUDGETS, month)]

    async def budget_counters(self, key_name: str, month: str) -> BudgetCounters | None:
        rows = await self._fetch(q.SELECT_BUDGET, key_name, month)
        return budget_counters_from(rows[0]) if rows else None

    async def apply_spend(self, month: str, deltas: Sequence[SpendDelta]) -> None:
        if not deltas:
            return
        # Rows are locked in name order, so two processes settling the same keys cannot deadlock.
        ordered = sorted(deltas, key=lambda d: d.key_name)
        async with self._db.transaction() as conn:
            await conn.executemany(q.ENSURE_BUDGET_ROW, [(d.key_name, month) for d in ordered])
            await conn.executemany(
                q.APPLY_SPEND,
                [
                    (d.key_name, month, d.spent_usd, d.balance_spent_usd, d.released_usd)
                    for d in ordered
                ],
            )

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(
                q.RESERVE,
                ask.key_name,
                ask.month,
                ask.amount_usd,
                ask.monthly_cap_usd,
                ask.credit_usd,
                ask.ttl_seconds,
            )
            if row is None:
                # No row yet (a key's first reservation) or over a limit: make sure the row
                # exists and check once more, so a racing first reservation is not refused.
                await conn.execute(q.ENSURE_BUDGET_ROW, ask.key_name, ask.month)
                row = await conn.fetchrow(
                    q.RESERVE,
                    ask.key_name,
                    ask.month,
                    ask.amount_usd,
                    ask.monthly_cap_usd,
                    ask.credit_usd,
                    ask.ttl_seconds,
                )
        return None if row is None else budget_counters_from(row)

    async def _fetch(self, sql: str, *params: object) -> list[Any]:
        async with self._db.connection() as conn:
            return list(await conn.fetch(sql, *params))


def _row_params(row: LedgerRow) -> tuple[object, ...]:
    return (
        row.id,
        row.request_id,
        row.created_at,
        row.key_name,
        row.route,
        _text(row.model_requested),
        row.model_used,
        row.deployment,
        row.status,
        row.outcome,
        row.error_kind,
        row.attempts,
        row.stream,
        row.input_tokens,
        row.output_tokens,
        row.cache_read_tokens,
        row.cache_write_tokens,
        row.cost_usd,
        row.latency_ms,
        row.upstream_ms,
        row.ttft_ms,
        row.cache_hit,
        row.attempt_log,
        row.cache_write_1h_tokens,
        _text(row.end_user),
        tags_text(row.tags),
    )


def _text(value: str | None) -> str | None:
    # The requested model is the caller's string; PostgreSQL text cannot hold U+0000, and one such
    # row would fail its whole batch (and every replay of it).
    if value is None or "\x00" not in value:
        return value
    return value.replace("\x00", "\ufffd")
