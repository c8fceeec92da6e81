"""Services: the one container of built components, made in the app's lifespan and passed along."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

from relaygate.accounting import Accounting, build_accounting
from relaygate.accounting.metrics import LedgerCollector
from relaygate.admission import Admitter, build_admitter
from relaygate.auth.bootstrap import BootstrapResult, bootstrap_if_empty
from relaygate.auth.cache import KeyCache
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.observability.metrics import Metrics
from relaygate.relay.attempts import AttemptRunner, health_board
from relaygate.routing.catalog import Catalog, build_catalog
from relaygate.settings import Settings
from relaygate.store import KeyStore, open_store
from relaygate.transport.http import HttpTransport

logger = logging.getLogger("relaygate")


@dataclass(slots=True)
class Services:
    settings: Settings
    store: KeyStore
    keys: KeyCache
    catalog: Catalog
    runner: AttemptRunner
    metrics: Metrics
    openai: OpenAIDialect
    anthropic: AnthropicDialect
    admission: Admitter
    accounting: Accounting
    bootstrap: BootstrapResult | None = None

    async def close(self) -> None:
        await self.accounting.stop()
        await self.admission.close()
        await self.keys.stop()
        await self.catalog.close()
        await self.store.close()


async def build_services(settings: Settings) -> Services:
    """Open the store, bootstrap credentials on first start, load keys, build the catalog."""
    store = await open_store(settings.resolved_database_url)
    try:
        bootstrap = await bootstrap_if_empty(store, settings.resolved_home)
        keys = KeyCache(store, refresh_seconds=settings.key_cache_refresh_seconds)
        await keys.start()
    except BaseException:
        await store.close()
        raise
    catalog = build_catalog(settings, HttpTransport())
    metrics = Metrics()
    board = health_board(catalog, metrics.breaker_changed)
    metrics.watch_deployments(board.snapshot)
    admission = await build_admitter(
        settings.limits, settings.redis_url, catalog.get, metrics.registry
    )
    accounting = await build_accounting(
        settings.accounting, settings.resolved_database_url, settings.resolved_home, catalog
    )
    await accounting.start()
    if accounting.ledger is not None:
        metrics.registry.register(LedgerCollector(accounting.ledger))
    return Services(
        settings=settings,
        store=store,
        keys=keys,
        catalog=catalog,
        runner=AttemptRunner(catalog.get, board, random.Random()),
        metrics=metrics,
        openai=OpenAIDialect(),
        anthropic=AnthropicDialect(),
        admission=admission,
        accounting=accounting,
        bootstrap=bootstrap,
    )
