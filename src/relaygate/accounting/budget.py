"""Budgets: reserve an estimated cost before a request, settle the actual cost after it.

A key may have a monthly cap (``monthly_budget_usd``, calendar month in UTC) and/or a prepaid
credit (``balance_usd``: the total of its top-ups). A request is admitted only if the key's spend,
plus what requests in flight have reserved, plus this request's estimate stays within both. The
estimate prices the prompt (about four characters a token) and the full ``max_tokens`` at the
route's dearest deployment, so the actual cost rarely exceeds it: N concurrent requests cannot
overspend by more than one request's reservation, however they interleave.

Two enforcers share ``Budgets``: ``LocalBudgets`` (below) keeps the counters in memory, never
touching the database on the request path, and persists them in the background; it is exact for
one process and, with several processes on one SQLite file, within ``sync_seconds`` of exact.
``SharedBudgets`` (budget_shared.py) makes each reservation one atomic UPDATE in PostgreSQL, so
any number of processes share a cap exactly; it costs one round trip per request, and only for
keys that have a budget. Settling is batched per key in the background in both; what the store
cannot take before the process stops is carried to the next start (budget_carry.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from relaygate.accounting.budget_carry import ClaimedSpend, OutageLog, UnwrittenSpend
from relaygate.core.background import BackgroundTask
from relaygate.core.errors import BudgetExhaustedError, BudgetHeldError, GatewayError
from relaygate.settings.accounting import BudgetSettings
from relaygate.store.errors import StoreError
from relaygate.store.ledger_records import BudgetCounters, SpendDelta
from relaygate.store.protocols import LedgerStore
from relaygate.store.records import KeyRecord

logger = logging.getLogger("relaygate.budget")
# Reserve at least this much, so a key at exactly its cap is refused even for unpriced models.
MIN_RESERVATION_USD = 1e-6
_EPSILON = 1e-9
# Holds are released as their requests finish (and, in shared mode, written within 0.2 s).
HELD_RETRY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Hold:
    """One request's reservation; ``remote`` when it is held in the shared store."""

    key_name: str
    amount_usd: float
    charge_balance: bool
    remote: bool = False


@dataclass(slots=True)
class Counters:
    """A key's counters as this process sees them."""

    month: str
    month_spent: float = 0.0
    balance_spent: float = 0.0
    reserved: float = 0.0


class Budgets(Protocol):
    """Reserve before, settle after; ``start``/``stop`` own the background settler."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def reserve(self, key: KeyRecord, amount_usd: float) -> Hold | None:
        """A hold, None when the key has no budget; raises BudgetExhaustedError."""
        ...

    def settle(self, key_name: str, hold: Hold | None, cost_usd: float) -> None:
        """Release ``hold`` and charge ``cost_usd``; never blocks, never raises."""
        ...

    def view(self, key_name: str) -> Counters | None:
        """The latest counters this process knows for the key."""
        ...


def has_budget(key: KeyRecord) -> bool:
    return key.monthly_budget_usd is not None or key.balance_usd is not None


def month_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m")


def over_limits(key: KeyRecord, counters: Counters, amount: float) -> bool:
    """Whether holding ``amount`` more would pass the key's monthly cap or prepaid balance."""
    cap, credit = key.monthly_budget_usd, key.balance_usd
    held = counters.reserved + amount
    return (cap is not None and counters.month_spent + held > cap + _EPSILON) or (
        credit is not None and counters.balance_spent + held > credit + _EPSILON
    )


def refusal(key: KeyRecord, counters: Counters | None, amount: float) -> GatewayError:
    """The 429 a caller sees, saying which limit, the spend and what is held by requests in
    flight. When the request would fit once those holds are settled the refusal is temporary:
    a retryable ``BudgetHeldError`` with ``Retry-After``; otherwise ``BudgetExhaustedError``."""
    c = counters or Counters("")
    parts, final = [], False
    if key.monthly_budget_usd is not None:
        final = final or c.month_spent + amount > key.monthly_budget_usd + _EPSILON
        parts.append(
            f"monthly budget ${key.monthly_budget_usd:.4f} (spent ${c.month_spent:.4f}, "
            f"${c.reserved:.4f} held by requests in flight)"
        )
    if key.balance_usd is not None:
        final = final or c.balance_spent + amount > key.balance_usd + _EPSILON
        left = max(0.0, key.balance_usd - c.balance_spent)
        parts.append(
            f"prepaid balance ${left:.4f} left, ${c.reserved:.4f} held by requests in flight"
        )
    limits = " and ".join(parts)
    if final:
        return BudgetExhaustedError(
            f"Budget exhausted for key '{key.name}': this request's estimated cost "
            f"${amount:.4f} does not fit in the {limits}. "
            "Ask an administrator to raise the budget or top up the balance."
        )
    return BudgetHeldError(
        f"Budget of key '{key.name}' is held by requests in flight: this request's estimated "
        f"cost ${amount:.4f} does not fit in the {limits} until they finish; retry shortly.",
        retry_after=HELD_RETRY_SECONDS,
    )


class MonthClock:
    """The current UTC month as ``YYYY-MM``, recomputed only when a month boundary passes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._month = ""
        self._until = -math.inf

    def current(self) -> str:
        now = self._clock()
        if now >= self._until:
            moment = datetime.fromtimestamp(now, UTC)
            self._month = month_of(moment)
            year, month = moment.year + moment.month // 12, moment.month % 12 + 1
            self._until = datetime(year, month, 1, tzinfo=UTC).timestamp()
        return self._month


class Settler:
    """Collects finished requests' costs per key and writes them in batches."""

    def __init__(
        self,
        store: LedgerStore,
        interval: float,
        months: MonthClock,
        after_flush: Callable[[], Awaitable[None]] | None = None,
        carry: UnwrittenSpend | None = None,
    ) -> None:
        self._store = store
        self._interval = interval
        self._months = months
        self._pending: dict[str, list[float]] = {}
        # Taken from _pending by the write in progress, until it commits or fails; one write at a
        # time, so a caller's flush also waits for the write that took its deltas first.
        self._writing: dict[str, list[float]] = {}
        self._write_lock = asyncio.Lock()
        self._month = months.current()
        self._loop = BackgroundTask("relaygate-budget-settler", self._run)
        self._stopping = asyncio.Event()
        self._after_flush = after_flush
        self._carry = carry
        self._carried: list[ClaimedSpend] = []  # counted in _pending, deleted once written
        self._outage = OutageLog(
            "budget counters not written yet (will retry)", "budget counters written again"
        )
        self._took_carried = False

    def add(self, key_name: str, released: float, spent: float, balance: float) -> None:
        self._roll()
        entry = self._pending.get(key_name)
        if entry is None:
            self._pending[key_name] = [released, spent, balance]
        else:
            entry[0] += released
            entry[1] += spent
            entry[2] += balance

    def pending(self, key_name: str) -> tuple[float, float]:
        """Spend of the key not yet written: (month spend, balance spend)."""
        self._roll()
        entry = self._pending.get(key_name)
        return (entry[1], entry[2]) if entry else (0.0, 0.0)

    def releasing(self, key_name: str) -> float:
        """Reservations of the key released here but not written yet (being written included)."""
        entry = self._pending.get(key_name)
        writing = self._writing.get(key_name)
        return (entry[0] if entry else 0.0) + (writing[0] if writing else 0.0)

    @contextlib.asynccontextmanager
    async def between_writes(self) -> AsyncIterator[None]:
        """No write in progress while inside: what the store shows and what ``pending`` and
        ``releasing`` report are then disjoint (a write that committed but whose task has not
        resumed yet would otherwise count in both)."""
        async with self._write_lock:
            yield

    def _roll(self) -> None:
        # Month spend still pending when the month turns belongs to the month that ended; written
        # under the new one it would count against the new month's cap. Balance spend and released
        # reservations do not depend on the month and are kept.
        month = self._months.current()
        if month != self._month:
            self._month = month
            for entry in self._pending.values():
                entry[1] = 0.0

    def take_carried(self) -> None:
        """Count the spend earlier processes could not write (budget_carry.py) as pending."""
        if self._carry is None or self._took_carried:
            return
        self._took_carried = True
        self._roll()
        self._carried = self._carry.claim()
        for claimed in self._carried:
            same_month = claimed.month == self._month
            for d in claimed.deltas:
                spent = d.spent_usd if same_month else 0.0
                self.add(d.key_name, d.released_usd, spent, d.balance_spent_usd)

    async def start(self) -> None:
        self.take_carried()
        self._loop.start()

    async def stop(self) -> None:
        # Not cancelled: a flush cut off mid-write rolls back, and its deltas were already taken.
        if self._loop.running:
            self._stopping.set()
            await self._loop.join()
        if await self.flush() or not self._pending:
            return
        lost = f"budget counters of {len(self._pending)} keys lost: the store is down"
        if self._carry is None:
            logger.error("%s", lost)
            return
        try:
            path = self._carry.save(self._month, self._deltas(self._pending))
        except OSError as exc:
            # Files claimed at start stay on disk for the next start; what came since is lost.
            logger.error("%s and they could not be saved: %s", lost, exc)
            return
        logger.warning("budget counters not written; saved to %s for the next start", path)
        carried, self._carried = self._carried, []
        for claimed in carried:  # their deltas are in the file just saved
            claimed.done()

    async def flush(self) -> bool:
        """Write pending deltas; on failure keep them for the next try. True when written.

        Returns only after any write already in progress has ended too, so what this process
        released before the call is in the store (or pending again) when it returns."""
        async with self._write_lock:
            self._roll()
            taken, self._pending = self._pending, {}
            if not taken:
                return True
            self._writing = taken
            try:
                return await self._write(taken)
            finally:
                self._writing = {}

    async def _write(self, taken: dict[str, list[float]]) -> bool:
        # The carried files whose deltas this write includes; deleted only once it commits.
        carried, self._carried = self._carried, []
        deltas = self._deltas(taken)
        try:
            await self._store.apply_spend(self._months.current(), deltas)
        except StoreError as exc:
            self._outage.failed(exc)
            self._carried += carried
            for d in deltas:
                self.add(d.key_name, d.released_usd, d.spent_usd, d.balance_spent_usd)
            return False
        self._outage.succeeded()
        for claimed in carried:
            claimed.done()
        return True

    @staticmethod
    def _deltas(pending: dict[str, list[float]]) -> list[SpendDelta]:
        return [SpendDelta(k, v[0], v[1], v[2]) for k, v in pending.items()]

    async def _run(self) -> None:
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._stopping.wait()
            if self._stopping.is_set():
                return
            try:
                await self.flush()
                if self._after_flush is not None:
                    await self._after_flush()
            except Exception:
                # The loop is this task's top handler: a bug in one round must not end syncing.
                logger.exception("budget sync round failed; retrying next interval")


class LocalBudgets:
    """Counters in memory; persisted and re-read from the store every ``sync_seconds``."""

    def __init__(
        self,
        store: LedgerStore,
        settings: BudgetSettings,
        months: MonthClock | None = None,
        carry: UnwrittenSpend | None = None,
    ) -> None:
        self._store = store
        self._months = months or MonthClock()
        self._counters: dict[str, Counters] = {}
        self._settler = Settler(store, settings.sync_seconds, self._months, self.reload, carry)
        self._reads = OutageLog(
            "budget counters not re-read (keeping the local view)", "budget counters re-read again"
        )

    async def start(self) -> None:
        self._settler.take_carried()  # before reading the counters, so the view includes it
        with contextlib.suppress(StoreError):
            await self.reload()
        await self._settler.start()

    async def stop(self) -> None:
        await self._settler.stop()

    async def reload(self) -> None:
        """Re-read every key's counters (other processes' spend), keeping unwritten local spend."""
        month = self._months.current()
        try:
            rows = await self._store.load_budgets(month)
        except StoreError as exc:
            self._reads.failed(exc)
            return
        self._reads.succeeded()
        for row in rows:
            self._merge(row, month)

    def _merge(self, row: BudgetCounters, month: str) -> None:
        spent, balance = self._settler.pending(row.key_name)
        current = self._counters.get(row.key_name)
        reserved = current.reserved if current is not None else 0.0
        self._counters[row.key_name] = Counters(
            month, row.month_spent_usd + spent, row.balance_spent_usd + balance, reserved
        )

    async def reserve(self, key: KeyRecord, amount_usd: float) -> Hold | None:
        if not has_budget(key):
            return None
        amount = max(amount_usd, MIN_RESERVATION_USD)
        counters = self._current(key.name)
        if over_limits(key, counters, amount):
            raise refusal(key, counters, amount)
        counters.reserved += amount
        return Hold(key.name, amount, key.balance_usd is not None)

    def settle(self, key_name: str, hold: Hold | None, cost_usd: float) -> None:
        counters = self._current(key_name)
        charged_balance = cost_usd if hold is not None and hold.charge_balance else 0.0
        if hold is not None:
            counters.reserved = max(0.0, counters.reserved - hold.amount_usd)
        counters.month_spent += cost_usd
        counters.balance_spent += charged_balance
        if cost_usd:
            self._settler.add(key_name, 0.0, cost_usd, charged_balance)

    def view(self, key_name: str) -> Counters | None:
        return self._counters.get(key_name)

    def _current(self, key_name: str) -> Counters:
        month = self._months.current()
        counters = self._counters.get(key_name)
        if counters is None:
            # Not read from the store yet: at least what this process has not written counts.
            spent, balance = self._settler.pending(key_name)
            counters = self._counters[key_name] = Counters(month, spent, balance)
        elif counters.month != month:
            counters.month, counters.month_spent = month, 0.0
        return counters
