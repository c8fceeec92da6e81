"""Services: the one container of built components, made in the app's lifespan and passed along."""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from relaygate.accounting import Accounting, build_accounting
from relaygate.accounting.metrics import LedgerCollector
from relaygate.admission import Admitter, build_admitter
from relaygate.alerts import AlertCollector, Alerts, build_alerts
from relaygate.auth.bootstrap import BootstrapResult, bootstrap_if_empty
from relaygate.auth.cache import KeyCache
from relaygate.auth.metrics_access import MetricsAccess
from relaygate.auth.snapshot import SNAPSHOT_FILE
from relaygate.cache import MemoryCache, RedisCache, ResponseCache
from relaygate.core.redact import Redactor
from relaygate.dialects.anthropic import AnthropicDialect
from relaygate.dialects.openai import OpenAIDialect
from relaygate.observability.cache_metrics import CacheMetrics
from relaygate.observability.logging import redact_logs
from relaygate.observability.metrics import Metrics, model_labels
from relaygate.pipelines import GatewayPath, Pipelines
from relaygate.pipelines.build import build_pipelines
from relaygate.recovery import DatabaseRecovery, ReadinessCollector
from relaygate.relay.attempts import AttemptRunner, health_board
from relaygate.relay.cached import ResponseCachePath
from relaygate.routing.catalog import Catalog, build_catalog
from relaygate.sessions import MemorySessionStore, RedisSessionStore, SessionBook, SessionStore
from relaygate.sessions.metrics import SessionCollector
from relaygate.settings import Settings, resolve_api_key
from relaygate.settings.credentials import upstream_credentials
from relaygate.settings.load import metrics_dir_from_env
from relaygate.store import (
    KeyStore,
    StoreUnavailableError,
    create_key_store,
    is_shared_url,
    redact_url,
)
from relaygate.transport.base import Transport
from relaygate.transport.h1 import H1Transport
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
    metrics_access: MetricsAccess
    # Upstream credentials kept out of every error a caller gets and every log line.
    redactor: Redactor
    sessions: SessionBook
    alerts: Alerts
    bootstrap: BootstrapResult | None = None
    database: DatabaseRecovery = field(default_factory=DatabaseRecovery)
    # The response cache and coalescing; None (the default) when no model or key turns it on.
    cache: ResponseCachePath | None = None
    pipelines: Pipelines | None = None

    async def close(self) -> None:
        if self.pipelines is not None:
            await self.pipelines.close()
        if self.cache is not None:
            await self.cache.close()
        await self.alerts.stop()
        await self.database.stop()
        await self.accounting.stop()
        await self.admission.close()
        await self.keys.stop()
        await self.catalog.close()
        await self.sessions.store.close()
        await self.store.close()
        await self.metrics.close()


async def build_services(settings: Settings, *, pipeline_workers: bool = True) -> Services:
    """Open the store, bootstrap credentials on first start, load keys, build the catalog, and
    (with pipelines configured) open the job store and start this process's pipeline workers.

    A shared (PostgreSQL) database that cannot be reached does not stop the start: the gateway
    serves the keys of the last snapshot (or is not ready) and reconnects in the background.
    """
    url, home = settings.resolved_database_url, settings.resolved_home
    shared = is_shared_url(url)
    store = create_key_store(url)
    keys = KeyCache(
        store,
        refresh_seconds=settings.key_cache_refresh_seconds,
        snapshot_path=home / SNAPSHOT_FILE if shared else None,
    )
    bootstrap = None
    outage: StoreUnavailableError | None = None
    try:
        await store.open()
        bootstrap = await bootstrap_if_empty(store, home)
        await keys.start()
    except StoreUnavailableError as exc:
        if not shared:
            await store.close()
            raise
        outage = exc
    except BaseException:
        await store.close()
        raise
    catalog = build_catalog(settings, upstream_transport(settings))
    redactor = Redactor(upstream_credentials(settings))
    redact_logs(redactor)
    rules = settings.alerts.rules
    window = max(rules.latency.window_seconds, rules.errors.window_seconds)
    metrics = Metrics(
        model_labels(settings), window_seconds=window, shared_dir=metrics_dir_from_env()
    )
    board = health_board(catalog, metrics.breaker_changed, on_panic=metrics.breaker_panicked)
    metrics.watch_deployments(board.snapshot)
    admission = await build_admitter(
        settings.limits,
        settings.redis_url,
        catalog.get,
        metrics.registry,
        workers=settings.server.workers if settings.redis_url else 1,
    )
    accounting = await build_accounting(
        settings.accounting, url, home, catalog, connect=outage is None
    )
    await accounting.start()
    if accounting.ledger is not None:
        metrics.registry.register(LedgerCollector(accounting.ledger))
    database = DatabaseRecovery()
    if outage is not None:
        database = DatabaseRecovery(
            partial(_reconnect, store, keys, accounting, home), redact_url(url)
        )
        _start_degraded(keys, outage)
        database.start(outage)
    metrics.registry.register(ReadinessCollector(keys, database))
    runner = AttemptRunner(catalog.get, board, random.Random())
    sessions = build_sessions(settings)
    metrics.registry.register(SessionCollector(sessions))
    alerts = build_alerts(
        settings.alerts,
        window=metrics.window,
        breakers=board.snapshot,
        levels=admission.degrade.levels,
        keys=keys.records,
        budget_counters=accounting.budgets.view,
        ledger=accounting.ledger,
    )
    metrics.registry.register(AlertCollector(alerts))
    alerts.start()
    services = Services(
        settings=settings,
        store=store,
        keys=keys,
        catalog=catalog,
        runner=runner,
        metrics=metrics,
        openai=OpenAIDialect(),
        anthropic=AnthropicDialect(),
        admission=admission,
        accounting=accounting,
        metrics_access=MetricsAccess(
            keys,
            required=settings.server.metrics_token_required,
            token=resolve_api_key(settings.server.metrics_token_env),
        ),
        redactor=redactor,
        sessions=sessions,
        alerts=alerts,
        bootstrap=bootstrap,
        database=database,
        cache=build_cache(settings, runner, metrics, redactor, accounting),
    )
    path = GatewayPath(keys, catalog, admission, accounting, services.runner, metrics, redactor)
    services.pipelines = await build_pipelines(settings, path, start=pipeline_workers)
    metrics.start()
    return services


def upstream_transport(settings: Settings) -> Transport:
    """The HTTP client ``server.upstream_client`` names, for every deployment with a base URL."""
    if settings.server.upstream_client == "h1":
        return H1Transport()
    return HttpTransport()


def build_sessions(settings: Settings) -> SessionBook:
    """Sessions in Redis when ``redis_url`` is set (shared by every process), else in memory."""
    store: SessionStore = (
        RedisSessionStore.from_url(settings.redis_url)
        if settings.redis_url
        else MemorySessionStore(settings.sessions.max_sessions, settings.sessions.max_memory_bytes)
    )
    models = {m.name: m.sessions for m in settings.models}
    return SessionBook(store, settings.sessions, models)


def build_cache(
    settings: Settings,
    runner: AttemptRunner,
    metrics: Metrics,
    redactor: Redactor,
    accounting: Accounting,
) -> ResponseCachePath | None:
    """The response cache when some model or key turns it on: Redis when ``backend`` says so
    (``auto``: when ``redis_url`` is set), else the in-process LRU."""
    config = settings.cache
    if not config.used:
        return None
    backend: ResponseCache
    redis = config.backend == "redis" or (config.backend == "auto" and settings.redis_url)
    if redis and settings.redis_url:
        backend = RedisCache(settings.redis_url, stale_seconds=config.stale_seconds)
    else:
        backend = MemoryCache(config.max_bytes, stale_seconds=config.stale_seconds)
    cache_metrics = CacheMetrics(metrics.registry, backend.stats)
    return ResponseCachePath(config, backend, runner, cache_metrics, redactor, accounting.price_of)


def _start_degraded(keys: KeyCache, outage: StoreUnavailableError) -> None:
    if keys.load_snapshot():
        serving = f"serving the last known keys: {keys.describe()}"
    else:
        serving = "no key snapshot exists, so requests get 503 and /readyz says not ready"
    logger.warning(
        "%s; starting in degraded mode (%s; ledger rows spill to disk; admin calls that need the "
        "database get 503) and retrying in the background",
        outage,
        serving,
    )


async def _reconnect(store: KeyStore, keys: KeyCache, accounting: Accounting, home: Path) -> None:
    """Open both stores (migrations run on open) and resume the key cache's refresh.

    Every step is safe to repeat, so a failure half-way is simply retried from the top. The
    ledger writer needs nothing: its next retry finds the store open and replays the spill.
    """
    await store.open()
    made = await bootstrap_if_empty(store, home)
    if made is not None:
        logger.warning(
            "first start: created an admin token and a key named %r; both are in %s "
            "(readable only by you)",
            made.key.name,
            made.path,
        )
    await accounting.store.open()
    await keys.start()
