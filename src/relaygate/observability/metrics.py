"""Prometheus metrics, kept in a registry owned by the app (no module-level collectors).

Under ``serve --workers N`` a scrape answers with every worker's metrics merged
(relaygate.observability.all_workers, where each gauge's merge is chosen).
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from relaygate.core.context import RequestContext
from relaygate.observability.all_workers import AllWorkers
from relaygate.observability.series import (
    CounterFamily,
    CounterValue,
    Families,
    GaugeFamily,
    HistogramFamily,
    HistogramValue,
)
from relaygate.observability.window import RequestWindow
from relaygate.routing.breaker import BreakerState
from relaygate.routing.health import HealthSnapshot
from relaygate.settings import Settings

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
UNKNOWN_MODEL = "unknown"
"""The one ``model`` label of every requested name that is not configured."""
NO_MODEL = "-"
_STATUS_LABELS = {code: str(code) for code in range(100, 600)}
# requests (route, model, status), latency and TTFT (route, model), overhead (route)
_RequestChildren = tuple[CounterValue, HistogramValue, HistogramValue, HistogramValue]


class Metrics:
    """Every label takes only values from the configuration or the code, never a caller's own
    text: each label set lives in the registry forever, so one per caller-chosen model name would
    grow memory and the ``/metrics`` answer without bound."""

    def __init__(
        self,
        model_labels: Mapping[str, str] | None = None,
        *,
        window_seconds: float = 300.0,
        shared_dir: Path | None = None,
    ) -> None:
        """``shared_dir``: where the workers of ``serve --workers N`` share their metrics."""
        # Configured model names and aliases -> the model's name: the only model labels.
        self._model_labels = dict(model_labels or {})
        # The recent requests in-process alert rules read (latency, error rate).
        self.window = RequestWindow(window_seconds)
        self.registry = CollectorRegistry(auto_describe=True)
        self.all_workers = AllWorkers(shared_dir, self.registry) if shared_dir else None
        # The request path's series: plain numbers on the event loop, no lock per update.
        self.requests = CounterFamily(
            "relaygate_requests",
            "Requests answered, by route, model and status",
            ("route", "model", "status"),
        )
        self.latency = HistogramFamily(
            "relaygate_request_duration_seconds",
            "Total request latency seen by the gateway",
            ("route", "model"),
            LATENCY_BUCKETS,
        )
        self.overhead = HistogramFamily(
            "relaygate_overhead_seconds",
            "Time spent in the gateway itself (latency minus upstream and back-off)",
            ("route",),
            OVERHEAD_BUCKETS,
        )
        self.ttft = HistogramFamily(
            "relaygate_time_to_first_token_seconds",
            "Time to the first streamed byte sent to the caller",
            ("route", "model"),
            LATENCY_BUCKETS,
        )
        self.attempts = CounterFamily(
            "relaygate_upstream_attempts",
            "Upstream attempts by deployment and outcome",
            ("deployment", "outcome"),
        )
        self.tokens = CounterFamily(
            "relaygate_tokens",
            "Tokens by model and kind (input, output, cache_read, cache_write)",
            ("model", "kind"),
        )
        self.cost = CounterFamily(
            "relaygate_cost_usd",
            "Cost of answered requests in USD, by model and key name (no end users or tags: "
            "those are in the ledger's reports)",
            ("model", "key"),
        )
        in_flight = GaugeFamily("relaygate_requests_in_flight", "Requests being handled")
        self.in_flight = in_flight.value
        self.registry.register(
            Families(
                self.requests,
                self.latency,
                self.overhead,
                self.ttft,
                self.attempts,
                self.tokens,
                self.cost,
                in_flight,
            )
        )
        self.breaker_state = Gauge(
            "relaygate_breaker_state",
            "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open",
            ("deployment",),
            registry=self.registry,
        )
        self.breaker_transitions = Counter(
            "relaygate_breaker_transitions",
            "Circuit breaker state changes, by deployment and the state entered",
            ("deployment", "state"),
            registry=self.registry,
        )

        self.breaker_panic = Counter(
            "relaygate_breaker_panic",
            "Requests sent although every breaker of their model and its fallbacks was open "
            "(healthy panic), by requested model",
            ("model",),
            registry=self.registry,
        )
        self.registry.register(_RuntimeCollector())
        self._request_children: dict[tuple[str, str, int], _RequestChildren] = {}

    def breaker_panicked(self, model: str) -> None:
        self.breaker_panic.labels(model).inc()

    def breaker_changed(self, deployment: str, old: BreakerState | None, new: BreakerState) -> None:
        """A breaker changed state (``old`` is None when its deployment is first seen)."""
        self.breaker_state.labels(deployment).set(new.value)
        if old is not None:
            self.breaker_transitions.labels(deployment, new.name.lower()).inc()

    def watch_deployments(self, snapshot: Callable[[], Iterable[HealthSnapshot]]) -> None:
        """Export each deployment's requests in flight and latency EWMA, read at scrape time."""
        self.registry.register(_DeploymentCollector(snapshot))

    def observe(self, ctx: RequestContext, elapsed: float | None = None) -> None:
        """Count a finished request (after accounting priced it: ``ctx.cost_usd`` is set);
        ``elapsed``: its ``ctx.elapsed()``, when already read."""
        model = self._model_label(ctx)
        status = ctx.status
        # Keyed by the status as a number: its label is looked up only with a new label set.
        children = self._request_children.get((ctx.route, model, status))
        if children is None:
            children = self._new_children(ctx.route, model, status)
        requests, latency, overhead, ttft_of = children
        requests.value += 1.0
        if elapsed is None:
            elapsed = ctx.elapsed()
        # The two histograms' observations inlined (a request's times are never NaN) and its
        # overhead worked out here: three calls fewer on every request, refusals included.
        latency.sum += elapsed
        latency.buckets[bisect_left(latency.bounds, elapsed)] += 1
        self.window.record(elapsed, status)
        spent = elapsed - ctx.upstream_seconds - ctx.waited_seconds  # ctx.overhead_seconds
        if spent < 0.0:
            spent = 0.0
        overhead.sum += spent
        overhead.buckets[bisect_left(overhead.bounds, spent)] += 1
        if ctx.first_token_at is not None:
            ttft_of.observe(ctx.first_token_at - ctx.started)
        if ctx.attempts:
            for attempt in ctx.attempts:
                self.attempts.labels(attempt.deployment, attempt.outcome).value += 1.0
        if ctx.cost_usd and ctx.key_name is not None:
            # Key names are the operator's (a bounded set), never the caller's text.
            self.cost.labels(model, ctx.key_name).inc(ctx.cost_usd)
        usage = ctx.usage
        if usage is not None:
            for kind, count in (
                ("input", usage.input_tokens),
                ("output", usage.output_tokens),
                ("cache_read", usage.cache_read_tokens),
                ("cache_write", usage.cache_write_tokens),
            ):
                if count:
                    self.tokens.labels(model, kind).inc(count)

    def _new_children(self, route: str, model: str, status: int) -> _RequestChildren:
        # The four series a request adds to, found once per label set; the label values are
        # bounded (configuration and code), so this map is too.
        children = self._request_children[(route, model, status)] = (
            self.requests.labels(route, model, _STATUS_LABELS.get(status, "other")),
            self.latency.labels(route, model),
            self.overhead.labels(route),
            self.ttft.labels(route, model),
        )
        return children

    def _model_label(self, ctx: RequestContext) -> str:
        if ctx.model_used is not None:
            return ctx.model_used  # a deployment's model: always configured
        requested = ctx.model_requested
        if requested is None:
            return NO_MODEL
        return self._model_labels.get(requested, UNKNOWN_MODEL)

    def start(self) -> None:
        """Start publishing this worker's metrics to the others (nothing for a single process)."""
        if self.all_workers is not None:
            self.all_workers.start()

    async def close(self) -> None:
        if self.all_workers is not None:
            await self.all_workers.stop()

    def render(self) -> bytes:
        if self.all_workers is not None:
            return self.all_workers.render()
        return generate_latest(self.registry)

    def gateway_view(self) -> CollectorRegistry:
        """The whole gateway's metrics: this registry, or every worker's merged when several
        processes serve (what the dashboard reads, so it agrees with ``/metrics``)."""
        if self.all_workers is not None:
            return self.all_workers.merged()
        return self.registry


def model_labels(settings: Settings) -> dict[str, str]:
    """Each configured model name and alias -> the ``model`` label its requests count under."""
    return {name: model.name for model in settings.models for name in (model.name, *model.aliases)}


class _DeploymentCollector(Collector):
    """Reads deployment health only when scraped: nothing on the request path."""

    def __init__(self, snapshot: Callable[[], Iterable[HealthSnapshot]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        outstanding = GaugeMetricFamily(
            "relaygate_deployment_outstanding",
            "Upstream attempts in flight per deployment (streams until they end)",
            labels=("deployment",),
        )
        latency = GaugeMetricFamily(
            "relaygate_deployment_latency_ewma_seconds",
            "Recent upstream latency per deployment (EWMA; absent when not measured lately)",
            labels=("deployment",),
        )
        for item in self._snapshot():
            outstanding.add_metric((item.deployment,), item.outstanding)
            if item.latency is not None:
                latency.add_metric((item.deployment,), item.latency)
        yield outstanding
        yield latency


class _RuntimeCollector(Collector):
    """The event loop's task count at scrape time: a leak shows as growth under steady load."""

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # scraped outside an event loop
            tasks = 0
        yield GaugeMetricFamily(
            "relaygate_asyncio_tasks", "asyncio tasks alive in this process's event loop", tasks
        )
