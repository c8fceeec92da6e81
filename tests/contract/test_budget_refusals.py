"""Budget refusals tell a temporary one (other requests' holds in flight: retry shortly) from a
final one (the spend itself leaves no room), with the real spend and held amounts, in the local
(in-process) and the shared (atomic in the store) mode, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from tests.unit.accounting.test_budget import key

from relaygate.accounting import LocalBudgets, SharedBudgets
from relaygate.accounting.budget import Budgets
from relaygate.core.errors import BudgetExhaustedError, BudgetHeldError, GatewayError
from relaygate.settings.accounting import BudgetSettings
from relaygate.store import LedgerStore, ReserveAsk
from relaygate.store.ledger_records import BudgetCounters

# No background settler runs in these tests (never started): what is written is what a test
# writes, so a hold stays in the store until the enforcer itself writes its release.
SETTINGS = BudgetSettings(sync_seconds=60.0)


@pytest.fixture(params=["local", "shared"])
async def budgets(request: pytest.FixtureRequest, ledger: LedgerStore) -> AsyncIterator[Budgets]:
    enforcer: Budgets = (
        LocalBudgets(ledger, SETTINGS)
        if request.param == "local"
        else SharedBudgets(ledger, SETTINGS)
    )
    yield enforcer
    await enforcer.stop()


async def refusal(budgets: Budgets, amount: float, cap: float = 1.0) -> GatewayError:
    with pytest.raises(GatewayError) as refused:
        await budgets.reserve(key(cap=cap), amount)
    return refused.value


async def test_back_to_back_requests_are_not_refused_for_settled_holds(budgets: Budgets) -> None:
    # Each request holds 0.3 of a 1.0 cap and costs 0.01: one after another, 50 of them fit.
    for _ in range(50):
        hold = await budgets.reserve(key(), 0.3)
        budgets.settle("k", hold, 0.01)


async def test_a_refusal_caused_by_holds_in_flight_is_retryable(budgets: Budgets) -> None:
    spent = await budgets.reserve(key(), 0.1)
    budgets.settle("k", spent, 0.2)
    holds = [await budgets.reserve(key(), 0.35) for _ in range(2)]
    error = await refusal(budgets, 0.3)
    assert isinstance(error, BudgetHeldError)
    assert error.status == 429 and error.kind == "rate_limited"
    assert error.retry_after is not None and 0 < error.retry_after <= 5
    assert "spent $0.2000" in error.message and "$0.7000 held" in error.message
    assert "retry" in error.message.lower()
    for hold in holds:
        budgets.settle("k", hold, 0.05)
    assert await budgets.reserve(key(), 0.3) is not None


async def test_a_refusal_the_spend_itself_causes_is_final(budgets: Budgets) -> None:
    spent = await budgets.reserve(key(), 0.9)
    budgets.settle("k", spent, 0.9)
    held = await budgets.reserve(key(), 0.05)
    error = await refusal(budgets, 0.2)
    assert isinstance(error, BudgetExhaustedError) and error.retry_after is None
    assert "Budget exhausted for key 'k'" in error.message
    assert "spent $0.9000" in error.message and "$0.0500 held" in error.message
    budgets.settle("k", held, 0.0)


async def test_an_estimate_above_the_whole_cap_is_final(budgets: Budgets) -> None:
    error = await refusal(budgets, 2.0)
    assert isinstance(error, BudgetExhaustedError)
    assert "spent $0.0000" in error.message


async def test_the_prepaid_balance_refusal_shows_its_holds(budgets: Budgets) -> None:
    prepaid = key(cap=None, credit=1.0)
    hold = await budgets.reserve(prepaid, 0.8)
    with pytest.raises(BudgetHeldError, match=r"prepaid balance \$1.0000 left, \$0.8000 held"):
        await budgets.reserve(prepaid, 0.5)
    budgets.settle("k", hold, 0.7)
    with pytest.raises(BudgetExhaustedError, match=r"prepaid balance \$0.3000 left"):
        await budgets.reserve(prepaid, 0.5)


async def test_a_shared_refusal_shows_another_processes_spend(ledger: LedgerStore) -> None:
    first, second = SharedBudgets(ledger, SETTINGS), SharedBudgets(ledger, SETTINGS)
    first.settle("k", await first.reserve(key(), 0.1), 0.85)
    await first.stop()
    error = await refusal(second, 0.2)
    assert isinstance(error, BudgetExhaustedError)
    assert "spent $0.8500" in error.message
    await second.stop()


class HoldsSettledDuringRefusal:
    """The store as another process sees it: the holds that refused a reservation are settled
    (written) by their process right after the refusal, before the refused one reads counters."""

    def __init__(self, store: LedgerStore, settle: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._settle: Callable[[], Awaitable[None]] | None = settle

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        counters = await self._store.try_reserve(ask)
        if counters is None and self._settle is not None:
            settle, self._settle = self._settle, None
            await settle()
        return counters


async def test_holds_settled_while_a_shared_refusal_is_explained_do_not_refuse(
    ledger: LedgerStore,
) -> None:
    other = SharedBudgets(ledger, SETTINGS)
    holds = [await other.reserve(key(), 0.4) for _ in range(2)]

    async def settle_them() -> None:
        for hold in holds:
            other.settle("k", hold, 0.01)
        await other.stop()  # writes the releases, as the other process's settler would

    racing = SharedBudgets(HoldsSettledDuringRefusal(ledger, settle_them), SETTINGS)  # type: ignore[arg-type]
    # Refused while the 0.8 was held, but it fits once the holds are gone: never a refusal
    # that reads "$0.0000 held by requests in flight".
    assert await racing.reserve(key(), 0.3) is not None
    await racing.stop()


class SpendWrittenSlowly:
    """The store while this process's settler is mid-write: its write of released holds waits
    for ``proceed``; ``refused`` is set when a reservation is refused."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self.writing = asyncio.Event()
        self.proceed = asyncio.Event()
        self.refused = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def apply_spend(self, month: str, deltas: Any) -> None:
        self.writing.set()
        await self.proceed.wait()
        await self._store.apply_spend(month, deltas)

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        counters = await self._store.try_reserve(ask)
        if counters is None:
            self.refused.set()
        return counters


async def test_a_refusal_waits_for_this_processes_releases_being_written(
    ledger: LedgerStore,
) -> None:
    # A caller sending requests back to back, refused by its own holds while the settler's
    # round is writing their releases: it waits for that write and is admitted, not refused.
    store = SpendWrittenSlowly(ledger)
    budgets = SharedBudgets(store, SETTINGS)  # type: ignore[arg-type]
    holds = [await budgets.reserve(key(), 0.4) for _ in range(2)]
    for hold in holds:
        budgets.settle("k", hold, 0.01)
    settling = asyncio.create_task(budgets._settler.flush())  # the settler's round, mid-write
    try:
        await store.writing.wait()
        asked = asyncio.create_task(budgets.reserve(key(), 0.3))
        await store.refused.wait()
        store.proceed.set()
        assert await asked is not None
    finally:
        store.proceed.set()
        await settling
        await budgets.stop()


class RoomTakenBeforeEachAsk:
    """The store on a busy key: before each of this process's first ``rounds`` asks, another
    process's requests hold the whole cap, and they finish (their releases written) right after
    the refusal, before it is explained."""

    def __init__(self, store: LedgerStore, other: SharedBudgets, rounds: int) -> None:
        self._store = store
        self._other = other
        self.rounds = rounds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        if self.rounds == 0:
            return await self._store.try_reserve(ask)
        self.rounds -= 1
        holds = [await self._other.reserve(key(), 0.5) for _ in range(2)]
        counters = await self._store.try_reserve(ask)
        for hold in holds:
            self._other.settle("k", hold, 0.0)
        await self._other.stop()  # writes the releases, as the other process's settler would
        return counters


async def test_a_shared_ask_refused_by_holds_that_keep_finishing_is_never_explained_by_none(
    ledger: LedgerStore,
) -> None:
    other = SharedBudgets(ledger, SETTINGS)
    # Refused three times in a row, each time by holds gone before the refusal is explained:
    # asked again while it fits, never refused with "$0.0000 held by requests in flight".
    busy = SharedBudgets(RoomTakenBeforeEachAsk(ledger, other, rounds=3), SETTINGS)  # type: ignore[arg-type]
    assert await busy.reserve(key(), 0.3) is not None
    await busy.stop()


async def test_a_shared_ask_refused_every_time_says_so_without_holds_that_are_gone(
    ledger: LedgerStore,
) -> None:
    other = SharedBudgets(ledger, SETTINGS)
    busy = SharedBudgets(RoomTakenBeforeEachAsk(ledger, other, rounds=100), SETTINGS)  # type: ignore[arg-type]
    error = await refusal(busy, 0.3)
    assert isinstance(error, BudgetHeldError) and error.retry_after is not None
    assert "$0.0000 held" not in error.message and "retry shortly" in error.message
    await busy.stop()


class ReleaseWrittenDuringExplanation:
    """This process's settler writes a release while a refusal is being explained: the write
    commits before the counters are read and its task has not resumed yet when they return."""

    def __init__(self, store: LedgerStore) -> None:
        self._store = store
        self.during_read: Callable[[], Awaitable[None]] | None = None
        self.writing = False
        self.committed = asyncio.Event()
        self.proceed = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def apply_spend(self, month: str, deltas: Any) -> None:
        self.writing = True
        await self._store.apply_spend(month, deltas)
        self.committed.set()
        await self.proceed.wait()

    async def budget_counters(self, key_name: str, month: str) -> BudgetCounters | None:
        if self.during_read is not None:
            during, self.during_read = self.during_read, None
            await during()
        row = await self._store.budget_counters(key_name, month)
        asyncio.get_running_loop().call_soon(self.proceed.set)
        return row


async def test_a_release_written_while_a_refusal_is_explained_is_not_subtracted_twice(
    ledger: LedgerStore,
) -> None:
    other = SharedBudgets(ledger, SETTINGS)
    other.settle("k", await other.reserve(key(), 0.1), 0.5)
    await other.stop()
    held = await other.reserve(key(), 0.3)  # another process's request, in flight
    store = ReleaseWrittenDuringExplanation(ledger)
    budgets = SharedBudgets(store, SETTINGS)  # type: ignore[arg-type]
    mine = await budgets.reserve(key(), 0.2)
    settling: list[asyncio.Task[bool]] = []

    async def finish_mine_and_write_it() -> None:
        budgets.settle("k", mine, 0.0)
        settling.append(asyncio.create_task(budgets._settler.flush()))
        await asyncio.sleep(0)  # the settler's round starts its write, unless it has to wait
        if store.writing:
            await store.committed.wait()

    store.during_read = finish_mine_and_write_it
    # Refused by spent 0.5 + held 0.3 + mine 0.2; explained while mine's release is written.
    error = await refusal(budgets, 0.45)
    assert isinstance(error, BudgetHeldError)
    assert "spent $0.5000, $0.3000 held" in error.message
    await asyncio.gather(*settling)
    other.settle("k", held, 0.0)
    await other.stop()
    await budgets.stop()
