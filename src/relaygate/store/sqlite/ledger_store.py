"""``LedgerStore`` on SQLite: usage rows, balance entries and budget counters."""

from __future__ import annotations

import contextlib
import functools
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
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
from relaygate.store.sqlite import ledger_queries as q
from relaygate.store.sqlite.connection import SqliteDatabase, from_text, to_text, utc_now

FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


class SqliteLedgerStore(DatabaseOwner[SqliteDatabase]):
    """The ledger in SQLite; one connection, writes in short ``BEGIN IMMEDIATE`` transactions."""

    def __init__(self, path: str) -> None:
        self._db = SqliteDatabase(path)

    async def insert_rows(self, rows: Sequence[LedgerRow]) -> int:
        """Insert ``rows`` (those whose id is already there are skipped) in one transaction, a
        few multi-row INSERTs (``statement_sizes``); returns how many were new."""
        if not rows:
            return 0
        inserted = start = 0
        async with self._db.transaction() as conn:
            for size, statements in statement_sizes(len(rows), rows_per_insert()):
                stop = start + size * statements
                # A generator: sqlite3 consumes it on aiosqlite's thread, so building the
                # parameters (about 1 us a row) does not hold up the event loop.
                params = _statement_params(rows, start, stop, size)
                cursor = await conn.executemany(q.insert_rows(size), params)
                inserted += max(0, cursor.rowcount)
                start = stop
        return inserted

    async def count_rows(self, since: datetime | None = None) -> int:
        sql, params = (
            (q.COUNT_ROWS, ()) if since is None else (q.COUNT_ROWS_SINCE, (to_text(since),))
        )
        rows = await self._fetch(sql, params)
        return int(rows[0][0])

    async def rows_for_request(self, request_id: str) -> list[LedgerRow]:
        return [
            ledger_row_from(r, _time(r[2]))
            for r in await self._fetch(q.SELECT_BY_REQUEST, (request_id,))
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
        return [ledger_row_from(r, _time(r[2])) for r in await self._fetch(sql, params)]

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
            by, to_text(since or FAR_PAST), to_text(until or FAR_FUTURE), where, tag_key
        )
        return [usage_group_from(row) for row in await self._fetch(sql, params)]

    async def top_up(
        self, key_name: str, amount_usd: float, kind: str, note: str | None = None
    ) -> BalanceEntry | None:
        now = utc_now()
        entry = BalanceEntry(str(uuid.uuid4()), key_name, amount_usd, kind, note, now)
        async with self._db.transaction() as conn:
            cursor = await conn.execute(q.CREDIT_KEY, (amount_usd, to_text(now), key_name))
            if cursor.rowcount == 0:
                return None
            await conn.execute(
                q.INSERT_BALANCE_ENTRY,
                (entry.id, key_name, amount_usd, kind, note, to_text(now)),
            )
            await conn.execute(q.BUMP_KEYS_VERSION)
        return entry

    async def balance_entries(self, key_name: str) -> list[BalanceEntry]:
        rows = await self._fetch(q.SELECT_BALANCE_ENTRIES, (key_name,))
        return [BalanceEntry(r[0], r[1], float(r[2]), r[3], r[4], _time(r[5])) for r in rows]

    async def load_budgets(self, month: str) -> list[BudgetCounters]:
        rows = await self._fetch(q.SELECT_BUDGETS, {"month": month})
        return [budget_counters_from(row) for row in rows]

    async def budget_counters(self, key_name: str, month: str) -> BudgetCounters | None:
        rows = await self._fetch(q.SELECT_BUDGET, {"key": key_name, "month": month})
        return budget_counters_from(tuple(rows[0])) if rows else None

    async def apply_spend(self, month: str, deltas: Sequence[SpendDelta]) -> None:
        if not deltas:
            return
        now = to_text(utc_now())
        async with self._db.transaction() as conn:
            for d in deltas:
                await conn.execute(q.ENSURE_BUDGET_ROW, (d.key_name, month, now))
                params = {
                    "key": d.key_name,
                    "month": month,
                    "spent": d.spent_usd,
                    "balance": d.balance_spent_usd,
                    "released": d.released_usd,
                    "now": now,
                }
                await conn.execute(q.APPLY_SPEND, params)

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        now = utc_now()
        params = {
            "key": ask.key_name,
            "month": ask.month,
            "amount": ask.amount_usd,
            "cap": ask.monthly_cap_usd,
            "credit": ask.credit_usd,
            "now": to_text(now),
            "stale": to_text(now - timedelta(seconds=ask.ttl_seconds)),
        }
        async with self._db.transaction() as conn:
            await conn.execute(q.ENSURE_BUDGET_ROW, (ask.key_name, ask.month, params["now"]))
            async with conn.execute(q.RESERVE, params) as cursor:
                row = await cursor.fetchone()
        return None if row is None else budget_counters_from(tuple(row))

    async def _fetch(self, sql: str, params: Sequence[object] | dict[str, object]) -> list[Any]:
        async with self._db.reading() as conn, conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())


# Rows per INSERT statement: fewer statements (and GIL hand-offs) per batch, within SQLite's
# limit on bound parameters (999 in builds before 3.32, 32766 since).
MAX_ROWS_PER_INSERT = 100


@functools.cache
def rows_per_insert() -> int:
    """Rows per INSERT with the SQLite this process links (its limit on bound parameters)."""
    with contextlib.closing(sqlite3.connect(":memory:")) as probe:
        return rows_within(probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))


def rows_within(parameter_limit: int) -> int:
    """``MAX_ROWS_PER_INSERT``, or as many rows as ``parameter_limit`` bound parameters hold."""
    return max(1, min(MAX_ROWS_PER_INSERT, parameter_limit // q.LEDGER_PARAMS))


def statement_sizes(count: int, per: int) -> list[tuple[int, int]]:
    """How ``count`` rows are inserted: (rows per statement, statements) pairs, ``per`` rows a
    statement and the rest in powers of two, so that a connection compiles a handful of INSERTs
    (of ``per``, 64, 32, ... 1 rows), whatever the sizes of the batches."""
    full, rest = divmod(count, per)
    sizes = [(per, full)] if full else []
    size = 1 << max(0, per.bit_length() - 1)
    while rest:
        if size <= rest:
            sizes.append((size, 1))
            rest -= size
        size >>= 1
    return sizes


def _statement_params(
    rows: Sequence[LedgerRow], start: int, stop: int, size: int
) -> Iterator[list[object]]:
    """The flat parameters of ``rows[start:stop]``, ``size`` rows per statement, in the order
    of LEDGER_COLUMNS; inline, not a function call and a tuple per row."""
    for first in range(start, stop, size):
        params: list[object] = []
        for row in rows[first : first + size]:
            tags = row.tags
            params += (
                row.id,
                row.request_id,
                to_text(row.created_at),
                row.key_name,
                row.route,
                row.model_requested,
                row.model_used,
                row.deployment,
                row.status,
                row.outcome,
                row.error_kind,
                row.attempts,
                int(row.stream),
                row.input_tokens,
                row.output_tokens,
                row.cache_read_tokens,
                row.cache_write_tokens,
                row.cost_usd,
                row.latency_ms,
                row.upstream_ms,
                row.ttft_ms,
                int(row.cache_hit),
                row.attempt_log,
                row.cache_write_1h_tokens,
                row.end_user,
                tags_text(tags) if tags else None,
            )
        yield params


def _time(text: str) -> datetime:
    moment = from_text(text)
    assert moment is not None
    return moment
