"""``Accounting``: what the request path calls, before (``reserve``) and after (``finish``).

``finish`` prices the request from its usage, settles its budget hold and queues its ledger row;
none of that awaits anything. The ledger writer and the budget settler are background tasks
started and drained here (``start`` / ``stop``), owned by ``Services``.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from relaygate.accounting.budget import Budgets, Hold, LocalBudgets, has_budget
from relaygate.accounting.budget_carry import UnwrittenSpend
from relaygate.accounting.budget_shared import SharedBudgets
from relaygate.accounting.fx import FxTable
from relaygate.accounting.ledger import LedgerWriter
from relaygate.accounting.pricing import Price, PriceBook
from relaygate.accounting.spill import SpillFile
from relaygate.accounting.usage import billable_usage
from relaygate.core.context import RequestContext, summarize_attempts
from relaygate.core.errors import clip
from relaygate.core.estimate import estimate_input_tokens
from relaygate.core.types import ChatRequest, Usage
from relaygate.routing.catalog import Catalog, ModelRoute
from relaygate.settings.accounting import AccountingSettings
from relaygate.store.factory import create_ledger_store, is_shared_url
from relaygate.store.ledger_records import LedgerRow
from relaygate.store.protocols import LedgerStore
from relaygate.store.records import KeyRecord

logger = logging.getLogger("relaygate.accounting")
# Characters of the caller's model name kept in its ledger row: a caller must not be able to
# write 100 kB into the database per junk request.
MODEL_NAME_LIMIT = 256
# The counts of a request without usage (every refusal): Usage is frozen, so one serves all.
_NO_USAGE = Usage()


class Accounting:
    """Prices, FX, the ledger writer and the budget enforcer of one gateway process."""

    def __init__(
        self,
        settings: AccountingSettings,
        store: LedgerStore,
        budgets: Budgets,
        ledger: LedgerWriter | None,
        catalog: Catalog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.budgets = budgets
        self.ledger = ledger
        self.prices = PriceBook.from_settings(settings)
        self.fx = FxTable.from_settings(settings)
        self._catalog = catalog
        self._by_deployment = _deployment_prices(self.prices, catalog)
        self._by_route: dict[str, Price | None] = {}
        self._row_ids = RowIds()

    async def start(self) -> None:
        await self.budgets.start()
        if self.ledger is not None:
            await self.ledger.start()

    async def stop(self) -> None:
        """Drain the ledger queue and write pending budget settlements, then close the store."""
        try:
            if self.ledger is not None:
                await self.ledger.stop()
            await self.budgets.stop()
        finally:
            await self.store.close()

    def unpriced_deployments(self) -> list[str]:
        """Deployments no price matches: their requests cost 0 and budgets cannot bite."""
        return sorted(d for d, price in self._by_deployment.items() if price is None)

    async def reserve(
        self, ctx: RequestContext, key: KeyRecord, req: ChatRequest, route: ModelRoute
    ) -> None:
        """Reserve the request's estimated cost; raises BudgetExhaustedError (a 429)."""
        ctx.chat_request = req
        if not has_budget(key):
            return
        ctx.budget_hold = await self.budgets.reserve(key, self.estimate(req, route))

    def estimate(self, req: ChatRequest, route: ModelRoute) -> float:
        """The prompt (about four characters a token) plus all of ``max_tokens``, priced at the
        route's dearest deployment (fallbacks included)."""
        price = self._route_price(route)
        if price is None:
            return 0.0
        max_tokens = req.max_tokens or max(
            (d.target.default_max_tokens for d in route.deployments), default=0
        )
        return price.estimate(estimate_input_tokens(req), max_tokens)

    def finish(self, ctx: RequestContext, elapsed: float | None = None) -> None:
        """Price, settle and queue the ledger row of a finished request; never awaits.
        ``elapsed``: its ``ctx.elapsed()``, when already read."""
        if ctx.key_name is None:
            return
        usage = billable_usage(ctx.usage, ctx.outcome, ctx.delivered_chars, ctx.chat_request)
        cost = 0.0
        if usage is not None and ctx.deployment is not None:
            price = self._by_deployment.get(ctx.deployment)
            if price is not None:
                cost = price.cost(usage)
        ctx.cost_usd = cost
        hold = ctx.budget_hold if isinstance(ctx.budget_hold, Hold) else None
        self.budgets.settle(ctx.key_name, hold, cost)
        if self.ledger is not None:
            self.ledger.record(ledger_row(ctx, usage, cost, self._row_ids.next(), elapsed))

    def price_of(self, deployment: str, usage: Usage) -> float:
        """What ``usage`` costs at ``deployment``'s price (0 when it has none)."""
        price = self._by_deployment.get(deployment)
        return price.cost(usage) if price is not None else 0.0

    def _route_price(self, route: ModelRoute) -> Price | None:
        if route.name in self._by_route:
            return self._by_route[route.name]
        prices = [self._by_deployment.get(d.id) for d in route.deployments]
        for fallback in route.fallbacks:
            other = self._catalog.get(fallback)
            if other is not None:
                prices += [self._by_deployment.get(d.id) for d in other.deployments]
        known = [p for p in prices if p is not None]
        dearest = max(known, key=lambda p: p.estimate(1000, 1000), default=None)
        self._by_route[route.name] = dearest
        return dearest


class RowIds:
    """Ledger row ids: a random per-process prefix and a counter (eight hex digits, more past
    2**32), unique across processes and restarts, and cheaper than a random id per request.

    The counter's last three hex digits come from a table and the rest is formatted once per
    4,096 ids: a format spec per id cost more than the rest of the id."""

    def __init__(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count(1)
        self._head = f"{self._prefix}{0:05x}"

    def next(self) -> str:
        number = next(self._counter)
        low = number & 0xFFF
        if not low:
            self._head = f"{self._prefix}{number >> 12:05x}"
        return self._head + _HEX3[low]


_HEX3 = tuple(f"{n:03x}" for n in range(4096))


def ledger_row(
    ctx: RequestContext,
    usage: Usage | None,
    cost: float,
    row_id: str,
    elapsed: float | None = None,
) -> LedgerRow:
    """The ledger row of a finished request (``elapsed``: its ``ctx.elapsed()``, if read)."""
    if elapsed is None:
        elapsed = ctx.elapsed()
    ttft = ctx.ttft_seconds()
    u = usage or _NO_USAGE
    model = ctx.model_requested
    # Positional, in LedgerRow's field order: with 26 keyword arguments the call costs three
    # times as much (CPython matches each keyword against the parameter names), once per request.
    return LedgerRow(
        row_id,  # id
        ctx.request_id,  # request_id
        datetime.fromtimestamp(time.time() - elapsed, UTC),  # created_at
        ctx.key_name,  # key_name
        ctx.route,  # route
        None if model is None else clip(model, MODEL_NAME_LIMIT),  # model_requested
        ctx.model_used,  # model_used
        ctx.deployment,  # deployment
        ctx.status,  # status
        ctx.outcome,  # outcome
        ctx.error_kind,  # error_kind
        len(ctx.attempts),  # attempts
        ctx.stream,  # stream
        u.input_tokens,  # input_tokens
        u.output_tokens,  # output_tokens
        u.cache_read_tokens,  # cache_read_tokens
        u.cache_write_tokens,  # cache_write_tokens
        cost,  # cost_usd
        elapsed * 1000.0,  # latency_ms
        ctx.upstream_seconds * 1000.0,  # upstream_ms
        None if ttft is None else ttft * 1000.0,  # ttft_ms
        ctx.cache_hit,  # cache_hit
        (
            f"coalesced:{ctx.coalesced_with}"
            if ctx.coalesced_with is not None
            else summarize_attempts(ctx.attempts)
        ),  # attempt_log
        u.cache_write_1h_tokens,  # cache_write_1h_tokens
        ctx.end_user,  # end_user
        ctx.tags,  # tags
    )


async def build_accounting(
    settings: AccountingSettings,
    database_url: str,
    home: Path,
    catalog: Catalog,
    *,
    connect: bool = True,
) -> Accounting:
    """Open the ledger store (migrations included) and build the writer and the enforcer.

    ``connect=False`` (the database is down at start) leaves the store unopened for the caller
    to open later; until then writes fail like in any outage, so ledger rows spill to disk.
    """
    store = create_ledger_store(database_url)
    if connect:
        await store.open()
    shared = settings.budget.mode == "shared" or (
        settings.budget.mode == "auto" and is_shared_url(database_url)
    )
    carry = UnwrittenSpend(home)
    budgets: Budgets = (
        SharedBudgets(store, settings.budget, carry=carry)
        if shared
        else LocalBudgets(store, settings.budget, carry=carry)
    )
    ledger = None
    if settings.ledger.enabled:
        spill = SpillFile(home, settings.ledger.spill_file, settings.ledger.spill_max_bytes)
        ledger = LedgerWriter(store, spill, settings.ledger)
    accounting = Accounting(settings, store, budgets, ledger, catalog)
    for deployment_id in accounting.unpriced_deployments():
        logger.warning(
            "no price for deployment %s: its requests are recorded at cost 0 "
            "(add it under accounting.pricing)",
            deployment_id,
        )
    return accounting


def _deployment_prices(prices: PriceBook, catalog: Catalog) -> dict[str, Price | None]:
    """Deployment id -> price, by deployment name, then model name, then upstream model name."""
    found: dict[str, Price | None] = {}
    for name in catalog.model_names:
        route = catalog.get(name)
        if route is None:
            continue
        for dep in route.deployments:
            found[dep.id] = prices.first((dep.id, dep.model_name, dep.target.model))
    return found
