"""Budget settlements survive a restart during a database outage, in local and shared mode."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.unit.accounting.test_budget import key

from relaygate.accounting import LocalBudgets, MonthClock, SharedBudgets, UnwrittenSpend
from relaygate.core.errors import BudgetExhaustedError
from relaygate.settings.accounting import BudgetSettings
from relaygate.store import LedgerStore, ReserveAsk, StoreUnavailableError, create_ledger_store
from relaygate.store.ledger_records import BudgetCounters, SpendDelta
from relaygate.store.records import KeyRecord

NOW = datetime(2031, 5, 20, 12, tzinfo=UTC)
MONTH = "2031-05"


class FlakyStore:
    """A real store behind a switch: while ``down``, every budget call fails like an outage."""

    def __init__(self, inner: LedgerStore) -> None:
        self.inner = inner
        self.down = False
        self.spend_writes = 0

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailableError("database is unavailable")

    async def apply_spend(self, month: str, deltas: Sequence[SpendDelta]) -> None:
        self._check()
        self.spend_writes += 1
        await self.inner.apply_spend(month, deltas)

    async def load_budgets(self, month: str) -> list[BudgetCounters]:
        self._check()
        return await self.inner.load_budgets(month)

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        self._check()
        return await self.inner.try_reserve(ask)

    async def budget_counters(self, key_name: str, month: str) -> BudgetCounters | None:
        self._check()
        return await self.inner.budget_counters(key_name, month)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    ledger = create_ledger_store(f"sqlite:///{tmp_path / 'relaygate.db'}")
    await ledger.open()
    yield ledger
    await ledger.close()


@pytest.fixture
async def postgres_store(postgres_url: str) -> AsyncIterator[LedgerStore]:
    ledger = create_ledger_store(postgres_url)
    await ledger.open()
    yield ledger
    await ledger.close()


def settings() -> BudgetSettings:
    return BudgetSettings.model_validate({"sync_seconds": 0.05})


def enforcer(mode: str, store: FlakyStore, home: Path) -> LocalBudgets | SharedBudgets:
    months = MonthClock(NOW.timestamp)
    kind = LocalBudgets if mode == "local" else SharedBudgets
    return kind(store, settings(), months, carry=UnwrittenSpend(home))  # type: ignore[arg-type]


async def settle_twice(budgets: LocalBudgets | SharedBudgets, k: KeyRecord) -> None:
    for cost in (0.25, 0.5):
        budgets.settle(k.name, await budgets.reserve(k, 0.1), cost)


@pytest.mark.parametrize("mode", ["local", "shared"])
async def test_spend_unwritten_at_stop_is_written_after_a_restart_exactly_once(
    mode: str, store: LedgerStore, tmp_path: Path
) -> None:
    await restart_during_an_outage(mode, store, tmp_path)


@pytest.mark.parametrize("mode", ["local", "shared"])
async def test_postgres_spend_unwritten_at_stop_is_written_after_a_restart(
    mode: str, postgres_store: LedgerStore, tmp_path: Path
) -> None:
    await restart_during_an_outage(mode, postgres_store, tmp_path)


async def restart_during_an_outage(mode: str, store: LedgerStore, tmp_path: Path) -> None:
    flaky = FlakyStore(store)
    k = key(cap=1.0, credit=5.0)
    first = enforcer(mode, flaky, tmp_path)
    await first.start()
    await settle_twice(first, k)  # reserved while the store answers (remote holds in shared)
    flaky.down = True
    await first.stop()  # the database is down: the settlements cannot be written now
    files = list(tmp_path.glob("budget-unwritten.*"))
    assert len(files) == 1 and (files[0].stat().st_mode & 0o777) == 0o600

    second = enforcer(mode, flaky, tmp_path)
    await second.start()  # still down: the carried spend waits, counted locally
    flaky.down = False
    await second.stop()  # the store is back: written now
    assert not list(tmp_path.glob("budget-unwritten.*"))
    (row,) = await store.load_budgets(MONTH)
    assert row.month_spent_usd == pytest.approx(0.75)
    assert row.balance_spent_usd == pytest.approx(0.75)
    assert row.reserved_usd == pytest.approx(0.0)

    third = enforcer(mode, flaky, tmp_path)  # nothing carried twice
    await third.start()
    await third.stop()
    (row,) = await store.load_budgets(MONTH)
    assert row.month_spent_usd == pytest.approx(0.75)


async def test_carried_spend_counts_against_the_cap_before_it_is_written(
    store: LedgerStore, tmp_path: Path
) -> None:
    flaky = FlakyStore(store)
    k = key(cap=1.0)
    first = enforcer("local", flaky, tmp_path)
    flaky.down = True
    await first.start()
    first.settle(k.name, await first.reserve(k, 0.1), 0.9)
    await first.stop()
    second = enforcer("local", flaky, tmp_path)
    await second.start()
    try:
        with pytest.raises(BudgetExhaustedError):
            await second.reserve(k, 0.2)
        assert await second.reserve(k, 0.05) is not None
    finally:
        await second.stop()


async def test_carried_month_spend_of_an_ended_month_is_not_charged_to_the_new_one(
    store: LedgerStore, tmp_path: Path
) -> None:
    flaky = FlakyStore(store)
    k = key(cap=1.0, credit=5.0)
    first = enforcer("local", flaky, tmp_path)
    flaky.down = True
    first.settle(k.name, await first.reserve(k, 0.1), 0.9)
    await first.stop()
    june = MonthClock(datetime(2031, 6, 1, 0, 0, 1, tzinfo=UTC).timestamp)
    flaky.down = False
    second = LocalBudgets(flaky, settings(), june, carry=UnwrittenSpend(tmp_path))  # type: ignore[arg-type]
    await second.start()
    await second.stop()
    (row,) = await store.load_budgets("2031-06")
    assert row.month_spent_usd == 0.0
    assert row.balance_spent_usd == pytest.approx(0.9)


async def test_a_file_claimed_by_a_live_process_is_left_alone(tmp_path: Path) -> None:
    carry = UnwrittenSpend(tmp_path)
    carry.save(MONTH, [SpendDelta("k", 0.0, 0.5, 0.0)])
    mine = carry.claim()
    assert [d.spent_usd for c in mine for d in c.deltas] == [0.5]
    assert UnwrittenSpend(tmp_path).claim() == []  # locked by the claim above
    for claimed in mine:
        claimed.release()
    (again,) = UnwrittenSpend(tmp_path).claim()
    again.done()
    assert not os.listdir(tmp_path)


async def test_an_outage_is_logged_once_then_at_most_once_a_minute_and_recovery_once(
    store: LedgerStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(store)
    budgets = enforcer("local", flaky, tmp_path)
    flaky.down = True
    budgets.settle("k", None, 0.5)
    settler = budgets._settler
    with caplog.at_level(logging.INFO, logger="relaygate.budget"):
        for _ in range(20):
            assert not await settler.flush()
            await budgets.reload()
        flaky.down = False
        assert await settler.flush()
        await budgets.reload()
    messages = [r.getMessage() for r in caplog.records if r.name == "relaygate.budget"]
    assert sum("not written yet" in m for m in messages) == 1, messages
    assert sum("not re-read" in m for m in messages) == 1, messages
    assert sum("written again" in m for m in messages) == 1, messages
    assert sum("re-read again" in m for m in messages) == 1, messages


async def test_spend_that_cannot_be_saved_either_is_logged_as_lost(
    store: LedgerStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(store)
    home = tmp_path / "home"
    home.write_text("not a directory")  # the carry-over file cannot be written
    budgets = enforcer("local", flaky, home)
    flaky.down = True
    budgets.settle("k", None, 0.5)
    with caplog.at_level(logging.ERROR, logger="relaygate.budget"):
        await budgets.stop()  # must not raise: the gateway still shuts down
    assert any("lost" in r.getMessage() for r in caplog.records)
