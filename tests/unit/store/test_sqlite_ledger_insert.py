"""SQLite ledger inserts: a batch goes in as a few multi-row INSERTs in one transaction."""

from __future__ import annotations

import dataclasses
import random
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from tests.contract.test_ledger_store import row as contract_row

from relaygate.store import LedgerRow, StoreDataError
from relaygate.store.sqlite import ledger_queries as q
from relaygate.store.sqlite import ledger_store
from relaygate.store.sqlite.connection import to_text
from relaygate.store.sqlite.ledger_store import (
    SqliteLedgerStore,
    rows_per_insert,
    rows_within,
    statement_sizes,
)


def row(**fields: object) -> LedgerRow:
    """The contract suite's row (fresh ids) with ``fields`` replaced."""
    return dataclasses.replace(contract_row(), **fields)  # type: ignore[arg-type]


async def inserts_seen(store: SqliteLedgerStore, statements: list[str]) -> None:
    """Record every INSERT the store's connection runs into ``statements``."""
    async with store._db.reading() as conn:
        await conn.set_trace_callback(
            lambda sql: statements.append(sql) if sql.startswith("INSERT") else None
        )


def test_rows_per_statement_stay_within_the_parameter_limit() -> None:
    assert q.LEDGER_PARAMS == 26
    assert rows_within(32766) == ledger_store.MAX_ROWS_PER_INSERT == 100
    assert rows_within(999) == 38  # SQLite before 3.32
    assert rows_within(26) == 1
    assert rows_within(10) == 1  # never none (a one-row INSERT binds 26: SQLite says so)
    assert 1 <= rows_per_insert() * q.LEDGER_PARAMS <= 32766


async def test_a_batch_is_a_few_multi_row_statements(tmp_path: Path) -> None:
    statements: list[str] = []
    async with SqliteLedgerStore(str(tmp_path / "l.db")) as store:
        await inserts_seen(store, statements)
        rows = [row() for _ in range(250)]
        assert await store.insert_rows(rows) == 250
        assert await store.count_rows() == 250
        got = await store.rows_for_request(rows[137].request_id)
    assert got == [rows[137]]
    # 100 + 100 rows, then the remaining 50 as 32 + 16 + 2: five statements, not 250.
    assert [sql.count("), (") + 1 for sql in statements] == [100, 100, 32, 16, 2]


def test_any_batch_needs_a_handful_of_statement_sizes() -> None:
    seen: set[int] = set()
    for per in (100, 38, 64, 1):
        for count in range(1, 1001):
            sizes = statement_sizes(count, per)
            assert sum(size * statements for size, statements in sizes) == count
            assert all(size <= per and statements >= 1 for size, statements in sizes)
            assert len(sizes) <= per.bit_length() + 1
            if per == 100:
                seen.update(size for size, _ in sizes)
    assert seen == {100, 64, 32, 16, 8, 4, 2, 1}  # what one connection ever compiles


async def test_known_ids_are_skipped_inside_and_across_statements(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ledger_store, "rows_per_insert", lambda: 4)
    async with SqliteLedgerStore(str(tmp_path / "l.db")) as store:
        first = [row() for _ in range(6)]
        assert await store.insert_rows(first) == 6
        # The same id twice in one statement, once in another, and ids already stored.
        again = [first[0], row(id="dup"), row(id="dup"), first[5], row(), row(id="dup"), row()]
        assert await store.insert_rows(again) == 3
        assert await store.count_rows() == 9


async def test_a_rejected_row_fails_the_whole_batch_and_writes_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ledger writer splits a rejected batch in halves until the bad row stands alone: that
    # needs a batch to be written whole or not at all, even across statements.
    monkeypatch.setattr(ledger_store, "rows_per_insert", lambda: 3)
    async with SqliteLedgerStore(str(tmp_path / "l.db")) as store:
        rows = [row() for _ in range(7)]
        rows[4] = row(route=None)  # NOT NULL: in the second statement
        with pytest.raises(StoreDataError):
            await store.insert_rows(rows)
        assert await store.count_rows() == 0
        rows[4] = rows[6] = row(input_tokens=2**63)  # refused by the driver while binding
        with pytest.raises(StoreDataError):
            await store.insert_rows(rows)
        assert await store.count_rows() == 0
        good = [r for r in rows if r.input_tokens < 2**63]
        assert await store.insert_rows(good) == 5


async def test_none_binds_as_null_through_a_registered_adapter(tmp_path: Path) -> None:
    # Registered by the SQLite store: without it sqlite3 raises and discards an AttributeError
    # per None it binds (six or more in a refusal's ledger row).
    assert (type(None), sqlite3.PrepareProtocol) in sqlite3.adapters
    async with SqliteLedgerStore(str(tmp_path / "l.db")) as store:
        wanted = row(key_name=None, model_requested=None, end_user=None, tags=None)
        assert await store.insert_rows([wanted]) == 1
        assert await store.rows_for_request(wanted.request_id) == [wanted]
        async with (
            store._db.reading() as conn,
            conn.execute(
                "SELECT count(*) FROM usage_ledger WHERE key_name IS NULL AND ttft_ms IS NULL"
                " AND model_requested IS NULL AND end_user IS NULL AND tags IS NULL"
            ) as cursor,
        ):
            assert await cursor.fetchone() == (1,)


@pytest.mark.parametrize("seed", range(3))
def test_timestamps_are_utc_isoformat_with_microseconds(seed: int) -> None:
    rng = random.Random(seed)
    zones = [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    start = datetime(1970, 1, 1, tzinfo=UTC)
    moments = [start + timedelta(microseconds=rng.randrange(10**17)) for _ in range(3000)]
    moments += [m + timedelta(microseconds=rng.randrange(3)) for m in moments[:500]]  # same s
    moments += [datetime(9999, 1, 1, tzinfo=UTC), datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)]
    for moment in moments:
        for zone in zones:
            local = moment.astimezone(zone)
            assert to_text(local) == moment.isoformat(timespec="microseconds")
    assert to_text(None) is None
