"""``SharedBudgets``: every reservation is one atomic UPDATE in the shared store (PostgreSQL).

The trade-off (see budget.py): one round trip per request of a key that has a budget, in exchange
for caps that hold exactly across any number of gateway processes. Keys without a budget never
reach the store on the request path. Settling (release the hold, charge the actual cost) is
batched per key in the background; a hold stays counted until its settlement is written, so the
delay errs toward refusing, never toward overspending (a refused key's unwritten settlements are
written at once and the reservation asked again). If the store cannot be reached, requests
are admitted (``fail_open``, the default: availability first, the spend is settled once it is
back) or refused with the budget error.
"""

from __future__ import annotations

import logging
import time

from relaygate.accounting.budget import (
    HELD_RETRY_SECONDS,
    MIN_RESERVATION_USD,
    Counters,
    Hold,
    MonthClock,
    Settler,
    has_budget,
    over_limits,
    refusal,
)
from relaygate.accounting.budget_carry import UnwrittenSpend
from relaygate.core.errors import BudgetExhaustedError, BudgetHeldError
from relaygate.settings.accounting import BudgetSettings
from relaygate.store.errors import StoreError
from relaygate.store.ledger_records import BudgetCounters, ReserveAsk
from relaygate.store.protocols import LedgerStore
from relaygate.store.records import KeyRecord

logger = logging.getLogger("relaygate.budget")
SETTLE_SECONDS = 0.2
WARN_EVERY_SECONDS = 30.0
# How often a reservation is asked: again after writing this process's settled holds, or after a
# refusal whose holds were settled before it was explained (see reserve). Each ask again follows
# holds that other requests took and released meanwhile, so on a busy key (many short requests,
# its cap a few holds wide) a few asks in a row can lose the room that was freed to another one.
_RESERVE_TRIES = 8


class SharedBudgets:
    """Reservations checked and counted by the store, atomically."""

    def __init__(
        self,
        store: LedgerStore,
        settings: BudgetSettings,
        months: MonthClock | None = None,
        carry: UnwrittenSpend | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._months = months or MonthClock()
        self._seen: dict[str, Counters] = {}
        interval = min(SETTLE_SECONDS, settings.sync_seconds)
        self._settler = Settler(store, interval, self._months, carry=carry)
        self._warned_at = -WARN_EVERY_SECONDS

    async def start(self) -> None:
        await self._settler.start()

    async def stop(self) -> None:
        await self._settler.stop()

    async def reserve(self, key: KeyRecord, amount_usd: float) -> Hold | None:
        if not has_budget(key):
            return None
        amount = max(amount_usd, MIN_RESERVATION_USD)
        ask = ReserveAsk(
            key_name=key.name,
            month=self._months.current(),
            amount_usd=amount,
            monthly_cap_usd=key.monthly_budget_usd,
            credit_usd=key.balance_usd,
            ttl_seconds=self._settings.reservation_ttl_seconds,
        )
        for _ in range(_RESERVE_TRIES):
            try:
                counters = await self._store.try_reserve(ask)
            except StoreError as exc:
                return self._unreachable(key, amount, exc)
            if counters is not None:
                break
            if self._settler.releasing(key.name):
                # Holds of finished requests are written every SETTLE_SECONDS: without this a
                # caller sending requests back to back is refused by its own settled holds.
                await self._settler.flush()
                continue
            # The refusal is explained with counters read after it: holds that refused it may
            # have been settled meanwhile (other requests finished). When the request fits now,
            # asking again is the honest answer; a refusal always matches what it reports.
            seen = await self._counters(key.name, ask.month)
            if seen is None or over_limits(key, seen, amount):
                raise refusal(key, seen, amount)
        else:
            # Every ask was refused by holds released right after. The counters explain the
            # refusal only when they show no room: a refusal never reports holds that are gone.
            await self._settler.flush()
            seen = await self._counters(key.name, ask.month)
            if seen is None or over_limits(key, seen, amount):
                raise refusal(key, seen, amount)
            raise BudgetHeldError(
                f"Budget of key '{key.name}' is held by requests in flight: this request's "
                f"estimated cost ${amount:.4f} was refused {_RESERVE_TRIES} times by holds of "
                "requests that finished right after; retry shortly.",
                retry_after=HELD_RETRY_SECONDS,
            )
        self._remember(counters)
        return Hold(key.name, amount, key.balance_usd is not None, remote=True)

    def settle(self, key_name: str, hold: Hold | None, cost_usd: float) -> None:
        released = hold.amount_usd if hold is not None and hold.remote else 0.0
        balance = cost_usd if hold is not None and hold.charge_balance else 0.0
        if released or cost_usd:
            self._settler.add(key_name, released, cost_usd, balance)

    def view(self, key_name: str) -> Counters | None:
        return self._seen.get(key_name)

    async def _counters(self, key_name: str, month: str) -> Counters | None:
        """The key's counters for a refusal's message: the store's, plus what this process has
        settled but not written yet, read between the settler's writes."""
        async with self._settler.between_writes():
            try:
                row = await self._store.budget_counters(key_name, month)
            except StoreError:
                row = None
            if row is not None:
                self._remember(row)
            seen = self._seen.get(key_name)
            if seen is None:
                return None
            spent, balance = self._settler.pending(key_name)
            held = max(0.0, seen.reserved - self._settler.releasing(key_name))
        return Counters(seen.month, seen.month_spent + spent, seen.balance_spent + balance, held)

    def _remember(self, row: BudgetCounters) -> None:
        self._seen[row.key_name] = Counters(
            row.month, row.month_spent_usd, row.balance_spent_usd, row.reserved_usd
        )

    def _unreachable(self, key: KeyRecord, amount: float, exc: StoreError) -> Hold:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            verdict = "admitting" if self._settings.fail_open else "refusing"
            logger.warning("budget store unreachable; %s budgeted requests: %s", verdict, exc)
        if not self._settings.fail_open:
            raise BudgetExhaustedError(
                f"The budget of key '{key.name}' cannot be checked right now; retry shortly."
            ) from None
        return Hold(key.name, amount, key.balance_usd is not None, remote=False)
