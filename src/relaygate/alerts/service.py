"""``Alerts``: the engine, its built-in rules and the webhook dispatcher of one gateway process,
built from the settings and the components whose state the rules read."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relaygate.accounting.budget import Counters
from relaygate.accounting.ledger import LedgerWriter
from relaygate.admission.degrade import Level
from relaygate.alerts.delivery import WebhookDispatcher
from relaygate.alerts.engine import AlertEngine
from relaygate.alerts.rules import (
    BreakerOpen,
    BudgetUse,
    Degraded,
    ErrorRate,
    LatencyP99,
    LedgerSpilling,
    Rule,
)
from relaygate.observability.window import RequestWindow
from relaygate.routing.health import HealthSnapshot
from relaygate.settings.alerts import AlertSettings
from relaygate.store.records import KeyRecord

OUTCOMES = ("sent", "failed", "dropped", "retried")


class Alerts:
    def __init__(
        self,
        settings: AlertSettings,
        engine: AlertEngine,
        dispatcher: WebhookDispatcher,
        budget: BudgetUse,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.dispatcher = dispatcher
        # Also read at scrape time for relaygate_key_budget_used_ratio (on even if the rule is off).
        self.budget = budget

    def start(self) -> None:
        if self.settings.enabled:
            self.dispatcher.start()
            self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
        await self.dispatcher.stop()


def build_alerts(
    settings: AlertSettings,
    *,
    window: RequestWindow,
    breakers: Callable[[], Iterable[HealthSnapshot]],
    levels: Callable[[], Mapping[str, Level]],
    keys: Callable[[], Iterable[KeyRecord]],
    budget_counters: Callable[[str], Counters | None],
    ledger: LedgerWriter | None,
    extra_rules: Iterable[Rule] = (),
) -> Alerts:
    """The built-in rules that are switched on, plus ``extra_rules`` (the extension point: a
    package with its own state, such as a jobs queue's dead letters, adds a rule here)."""
    r = settings.rules
    rules: list[Rule] = []
    budget = BudgetUse(r.budget, keys, budget_counters)
    if r.latency.enabled:
        rules.append(LatencyP99(r.latency, window))
    if r.errors.enabled:
        rules.append(ErrorRate(r.errors, window))
    if r.budget.enabled:
        rules.append(budget)
    if r.breaker.enabled:
        rules.append(BreakerOpen(r.breaker, breakers))
    if r.degradation.enabled:
        rules.append(Degraded(r.degradation, levels))
    if r.ledger_spill.enabled and ledger is not None:
        writer = ledger
        rules.append(
            LedgerSpilling(
                lambda: (
                    not writer.stats.healthy or writer.spill.bytes_used > 0,
                    writer.spill.bytes_used,
                )
            )
        )
    rules.extend(extra_rules)
    dispatcher = WebhookDispatcher(settings.webhooks, settings.queue_size)
    engine = AlertEngine(
        rules,
        dispatcher.notify,
        interval_seconds=settings.evaluate_seconds,
        repeat_seconds=settings.repeat_seconds,
        recent=settings.recent,
    )
    return Alerts(settings, engine, dispatcher, budget)


class AlertCollector(Collector):
    """Active alerts and webhook delivery counters, read when scraped."""

    def __init__(self, alerts: Alerts) -> None:
        self._alerts = alerts

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        active = GaugeMetricFamily(
            "relaygate_alerts_active", "Alerts firing now, by rule", labels=("rule",)
        )
        firing: dict[str, int] = {rule.name: 0 for rule in self._alerts.engine.rules}
        for alert in self._alerts.engine.active():
            firing[alert["rule"]] = firing.get(alert["rule"], 0) + 1
        for rule, count in firing.items():
            active.add_metric((rule,), count)
        yield active
        sent = CounterMetricFamily(
            "relaygate_alert_notifications",
            "Alert notifications per webhook: sent, failed (after every retry), dropped (queue "
            "full) and retried attempts",
            labels=("webhook", "outcome"),
        )
        counts = self._alerts.dispatcher.counts
        for label in self._alerts.dispatcher.labels:
            for outcome in OUTCOMES:
                sent.add_metric((label, outcome), counts[(label, outcome)])
        yield sent
        ratio = GaugeMetricFamily(
            "relaygate_key_budget_used_ratio",
            "Share of each key's monthly budget or prepaid balance used (as this process sees it)",
            labels=("key", "limit"),
        )
        for key, what, used, limit in self._alerts.budget.used():
            ratio.add_metric((key.name, what.split()[0]), used / limit)
        yield ratio
