"""Reserve before, settle after: local (in-process) and shared (atomic in the store) enforcers."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.waiting import eventually

from relaygate.accounting import LocalBudgets, MonthClock, SharedBudgets
from relaygate.core.errors import BudgetExhaustedError, BudgetHeldError
from relaygate.settings.accounting import BudgetSettings
from relaygate.store import LedgerStore, ReserveAsk, StoreUnavailableError, create_ledger_store
from relaygate.store.ledger_records import BudgetCounters, SpendDelta
from relaygate.store.records import KeyRecord

NOW = datetime(2031, 5, 20, 12, tzinfo=UTC)


def key(name: str = "k", cap: float | None = 1.0, credit: float | None = None) -> KeyRecord:
    return KeyRecord(
        id="00000000-0000-0000-0000-000000000000",
        name=name,
        key_hash=hashlib.sha256(name.encode()).hexdigest(),
        key_prefix="rg-abcde",
        owner=None,
        team=None,
        allowed_models=(),
        priority=0,
        rps=None,
        burst=None,
        rpm=None,
        tpm=None,
        max_concurrent=None,
        monthly_budget_usd=cap,
        balance_usd=credit,
        expires_at=None,
        disabled=False,
        created_at=NOW,
    )


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now.timestamp()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LedgerStore]:
    ledger = create_ledger_store(f"sqlite:///{tmp_path / 'relaygate.db'}")
    await ledger.open()
    yield ledger
    await ledger.close()


def settings(**fields: object) -> BudgetSettings:
    return BudgetSettings.model_validate({"sync_seconds": 0.05, **fields})


async def test_keys_without_a_budget_never_reserve(store: LedgerStore) -> None:
    budgets = LocalBudgets(store, settings())
    assert await budgets.reserve(key(cap=None), 1e9) is None


async def test_local_reservations_stop_at_the_cap(store: LedgerStore) -> None:
    budgets = LocalBudgets(store, settings())
    holds = [await budgets.reserve(key(), 0.3) for _ in range(3)]
    with pytest.raises(BudgetHeldError) as refused:  # temporary: only holds are in the way
        await budgets.reserve(key(), 0.3)
    assert refused.value.status == 429
    assert "Budget of key 'k' is held by requests in flight" in refused.value.message
    assert "monthly budget $1.0000" in refused.value.message
    for hold in holds:
        budgets.settle("k", hold, 0.05)
    assert await budgets.reserve(key(), 0.8) is not None


async def test_the_actual_cost_counts_after_settling(store: LedgerStore) -> None:
    budgets = LocalBudgets(store, settings())
    hold = await budgets.reserve(key(), 0.5)
    budgets.settle("k", hold, 0.9)
    view = budgets.view("k")
    assert view is not None and view.month_spent == pytest.approx(0.9) and view.reserved == 0
    with pytest.raises(BudgetExhaustedError):
        await budgets.reserve(key(), 0.2)


async def test_concurrent_requests_overspend_by_at_most_one_reservation(
    store: LedgerStore,
) -> None:
    budgets = LocalBudgets(store, settings())
    admitted = 0
    spent = 0.0

    async def request(cost: float) -> None:
        nonlocal admitted, spent
        try:
            hold = await budgets.reserve(key(), 0.1)
        except (BudgetExhaustedError, BudgetHeldError):
            return
        admitted += 1
        await asyncio.sleep(0.001)  # the request runs while others reserve: the race under test
        spent += cost
        budgets.settle("k", hold, cost)

    await asyncio.gather(*(request(0.1) for _ in range(100)))
    assert admitted == 10
    assert spent <= 1.0 + 0.1


async def test_prepaid_credit_is_charged_and_checked(store: LedgerStore) -> None:
    budgets = LocalBudgets(store, settings())
    prepaid = key(cap=None, credit=2.0)
    hold = await budgets.reserve(prepaid, 0.5)
    assert hold is not None and hold.charge_balance
    budgets.settle("k", hold, 1.8)
    with pytest.raises(BudgetExhaustedError, match=r"prepaid balance \$0.2000 left"):
        await budgets.reserve(prepaid, 0.5)
    assert await budgets.reserve(key(cap=None, credit=3.0), 0.5) is not None


async def test_a_new_month_resets_the_monthly_spend_not_the_balance(store: LedgerStore) -> None:
    clock = Clock()
    budgets = LocalBudgets(store, settings(), MonthClock(clock))
    hold = await budgets.reserve(key(cap=1.0, credit=5.0), 0.1)
    budgets.settle("k", hold, 0.95)
    with pytest.raises(BudgetExhaustedError):
        await budgets.reserve(key(cap=1.0, credit=5.0), 0.1)
    clock.now = datetime(2031, 6, 1, 0, 0, 1, tzinfo=UTC)
    assert await budgets.reserve(key(cap=1.0, credit=5.0), 0.1) is not None
    view = budgets.view("k")
    assert view is not None and view.month == "2031-06" and view.balance_spent == 0.95


async def test_local_spend_is_persisted_and_survives_a_restart(store: LedgerStore) -> None:
    clock = MonthClock(NOW.timestamp)
    first = LocalBudgets(store, settings(), clock)
    await first.start()
    first.settle("k", await first.reserve(key(), 0.1), 0.7)
    await first.stop()
    second = LocalBudgets(store, settings(), clock)
    await second.start()
    try:
        with pytest.raises(BudgetExhaustedError):
            await second.reserve(key(), 0.4)
        assert await second.reserve(key(), 0.3) is not None
    finally:
        await second.stop()


async def test_two_local_views_see_each_others_spend_after_a_sync(store: LedgerStore) -> None:
    clock = MonthClock(NOW.timestamp)
    a, b = LocalBudgets(store, settings(), clock), LocalBudgets(store, settings(), clock)
    await a.start()
    await b.start()
    try:
        a.settle("k", await a.reserve(key(), 0.1), 0.9)
        # a writes its spend, then b re-reads it (each every sync_seconds).
        await eventually(lambda: (seen := b.view("k")) is not None and seen.month_spent >= 0.9)
        with pytest.raises(BudgetExhaustedError):
            await b.reserve(key(), 0.2)
    finally:
        await a.stop()
        await b.stop()


async def test_shared_reservations_hold_across_enforcers(store: LedgerStore) -> None:
    clock = MonthClock(NOW.timestamp)
    a, b = SharedBudgets(store, settings(), clock), SharedBudgets(store, settings(), clock)
    results = await asyncio.gather(
        *(enforcer.reserve(key(), 0.1) for enforcer in [a, b] * 10), return_exceptions=True
    )
    admitted = [r for r in results if not isinstance(r, BaseException)]
    assert len(admitted) == 10
    assert all(isinstance(r, BudgetHeldError) for r in results if r not in admitted)
    for hold in admitted:
        a.settle("k", hold, 0.01)
    await a.stop()
    [counters] = await store.load_budgets("2031-05")
    assert counters.reserved_usd == pytest.approx(0.0)
    assert counters.month_spent_usd == pytest.approx(0.1)
    assert await b.reserve(key(), 0.85) is not None


class DownStore:
    async def try_reserve(self, ask: ReserveAsk) -> None:
        raise StoreUnavailableError("PostgreSQL is unavailable")


async def test_shared_fails_open_by_default_and_closed_when_asked() -> None:
    open_budgets = SharedBudgets(DownStore(), settings())  # type: ignore[arg-type]
    hold = await open_budgets.reserve(key(), 0.5)
    assert hold is not None and not hold.remote
    closed = SharedBudgets(DownStore(), settings(fail_open=False))  # type: ignore[arg-type]
    with pytest.raises(BudgetExhaustedError, match="cannot be checked right now"):
        await closed.reserve(key(), 0.5)


async def test_shared_budgets_while_the_database_was_down_since_start_act_as_in_an_outage() -> None:
    # The gateway started without PostgreSQL: its ledger store was never opened.
    never_opened = create_ledger_store("postgresql://postgres@127.0.0.1:1/test")
    hold = await SharedBudgets(never_opened, settings()).reserve(key(), 0.5)
    assert hold is not None and not hold.remote
    closed = SharedBudgets(never_opened, settings(fail_open=False))
    with pytest.raises(BudgetExhaustedError, match="cannot be checked right now"):
        await closed.reserve(key(), 0.5)


def test_the_month_clock_turns_over_at_midnight_utc() -> None:
    clock = Clock()
    clock.now = datetime(2031, 12, 31, 23, 59, 59, tzinfo=UTC)
    months = MonthClock(clock)
    assert months.current() == "2031-12"
    clock.now = datetime(2032, 1, 1, tzinfo=UTC)
    assert months.current() == "2032-01"


class SlowSpendStore:
    """Writes spend only after a pause, so a flush can be in flight when the enforcer stops."""

    def __init__(self, inner: LedgerStore) -> None:
        self.inner = inner
        self.writing = asyncio.Event()

    async def apply_spend(self, month: str, deltas: Sequence[SpendDelta]) -> None:
        self.writing.set()
        await asyncio.sleep(0.05)  # a slow write, so that stop() finds it in flight
        await self.inner.apply_spend(month, deltas)

    async def load_budgets(self, month: str) -> list[BudgetCounters]:
        return await self.inner.load_budgets(month)


async def test_stopping_during_a_background_flush_keeps_the_spend(store: LedgerStore) -> None:
    slow = SlowSpendStore(store)
    budgets = LocalBudgets(slow, settings(sync_seconds=0.01))  # type: ignore[arg-type]
    await budgets.start()
    hold = await budgets.reserve(key(), 0.1)
    budgets.settle("k", hold, 0.25)
    await asyncio.wait_for(slow.writing.wait(), 1)
    await budgets.stop()
    month = datetime.now(UTC).strftime("%Y-%m")
    (row,) = await store.load_budgets(month)
    assert row.month_spent_usd == pytest.approx(0.25)


async def test_spend_settled_before_midnight_but_written_after_stays_in_its_month(
    store: LedgerStore,
) -> None:
    clock = Clock()
    clock.now = datetime(2031, 5, 31, 23, 59, 59, tzinfo=UTC)
    budgets = LocalBudgets(store, settings(), MonthClock(clock))
    hold = await budgets.reserve(key(cap=1.0, credit=5.0), 0.1)
    budgets.settle("k", hold, 0.95)
    clock.now = datetime(2031, 6, 1, 0, 0, 1, tzinfo=UTC)
    await budgets.stop()  # the pending spend is written now, in June
    rows = {r.key_name: r for r in await store.load_budgets("2031-06")}
    assert rows["k"].month_spent_usd == 0.0
    assert rows["k"].balance_spent_usd == pytest.approx(0.95)
    restarted = LocalBudgets(store, settings(), MonthClock(clock))
    await restarted.reload()
    assert await restarted.reserve(key(cap=1.0, credit=5.0), 0.5) is not None
