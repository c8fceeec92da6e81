"""The request path's lock-free series render what prometheus_client's own metrics would render
for the same observations: same families, samples, labels (and their order), values, HELP and
buckets, in the text and OpenMetrics formats and in the workers' merged snapshots."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import metrics as client_metrics
from prometheus_client.core import Metric
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from relaygate.admission.metrics import RESULTS as ADMISSION_RESULTS
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.core.types import Usage
from relaygate.observability.all_workers import AllWorkers
from relaygate.observability.metrics import LATENCY_BUCKETS, OVERHEAD_BUCKETS, Metrics
from relaygate.observability.series import (
    CounterFamily,
    Families,
    GaugeFamily,
    HistogramFamily,
)

NOW = 1_765_000_000.25
BUCKETS = (0.005, 0.01, 0.025, 0.5, 1, 2.5)
SAMPLE_VALUES = st.one_of(
    st.sampled_from([0.0, *BUCKETS, 2.5000001, -1.0, math.inf, math.nan]),
    st.floats(min_value=-10, max_value=10),
)


@pytest.fixture(autouse=True)
def frozen_wall_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both sides read ``time.time()`` for their ``_created`` samples."""
    monkeypatch.setattr(time, "time", lambda: NOW)


def samples(metrics: list[Metric]) -> list[tuple[str, str, str, str, list[object]]]:
    """Everything a family carries, label order and NaN included (``Metric ==`` compares label
    dicts without order, and NaN != NaN)."""
    return [
        (
            metric.name,
            metric.documentation,
            metric.type,
            metric.unit,
            [
                (s.name, list(s.labels.items()), repr(s.value), s.timestamp, s.exemplar)
                for s in metric.samples
            ],
        )
        for metric in metrics
    ]


class _Only(Collector):
    def __init__(self, registry: CollectorRegistry, names: frozenset[str]) -> None:
        self._registry, self._names = registry, names

    def collect(self) -> Iterator[Metric]:
        return (m for m in self._registry.collect() if m.name in self._names)


def only(registry: CollectorRegistry, names: frozenset[str]) -> CollectorRegistry:
    view = CollectorRegistry(auto_describe=False)
    view.register(_Only(registry, names))
    return view


def assert_same(ours: CollectorRegistry, reference: CollectorRegistry) -> None:
    assert samples(list(ours.collect())) == samples(list(reference.collect()))
    assert generate_latest(ours) == generate_latest(reference)
    assert generate_openmetrics(ours) == generate_openmetrics(reference)  # type: ignore[no-untyped-call]


# One counter, one histogram and one gauge, fed the same operations on both sides.
Operation = tuple[str, tuple[str, ...], float]
LABEL_VALUES = st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["x", "y"]))
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("count"), LABEL_VALUES, st.floats(min_value=0, max_value=1e6)),
        st.tuples(st.just("observe"), LABEL_VALUES, SAMPLE_VALUES),
        st.tuples(st.just("gauge"), st.just(()), st.floats(min_value=-5, max_value=5)),
    ),
    max_size=60,
)


def both(operations: list[Operation]) -> tuple[CollectorRegistry, CollectorRegistry]:
    reference = CollectorRegistry()
    counter = Counter("t_events", "Events, by a and b", ("a", "b"), registry=reference)
    histogram = Histogram("t_seconds", "Durations", ("a", "b"), buckets=BUCKETS, registry=reference)
    gauge = Gauge("t_in_flight", "In flight", registry=reference)
    ours = CollectorRegistry()
    events = CounterFamily("t_events", "Events, by a and b", ("a", "b"))
    seconds = HistogramFamily("t_seconds", "Durations", ("a", "b"), BUCKETS)
    in_flight = GaugeFamily("t_in_flight", "In flight")
    ours.register(Families(events, seconds, in_flight))
    for kind, labels, amount in operations:
        if kind == "count":
            counter.labels(*labels).inc(amount)
            events.labels(*labels).inc(amount)
        elif kind == "observe":
            histogram.labels(*labels).observe(amount)
            seconds.labels(*labels).observe(amount)
        elif amount >= 0:
            gauge.inc(amount)
            in_flight.value.inc(amount)
        else:
            gauge.dec(-amount)
            in_flight.value.dec(-amount)
    return ours, reference


@given(OPERATIONS)
def test_counters_histograms_and_gauges_render_as_prometheus_clients(
    operations: list[Operation],
) -> None:
    ours, reference = both(operations)
    assert_same(ours, reference)


def test_without_created_series_neither_side_has_them(monkeypatch: pytest.MonkeyPatch) -> None:
    operations: list[Operation] = [("count", ("a", "x"), 2.0), ("observe", ("b", "y"), 0.01)]
    monkeypatch.setattr(client_metrics, "_use_created", False)
    ours, reference = both(operations)
    assert_same(ours, reference)
    assert b"_created" not in generate_latest(ours)


def test_a_histogram_with_a_negative_bound_has_no_sum_as_prometheus_clients() -> None:
    reference = CollectorRegistry()
    Histogram("t_delta", "Deltas", buckets=(-1, 0, 1), registry=reference).observe(0.5)
    ours = CollectorRegistry()
    delta = HistogramFamily("t_delta", "Deltas", (), (-1, 0, 1, math.inf))
    ours.register(Families(delta))
    delta.labels().observe(0.5)
    assert_same(ours, reference)
    assert b"t_delta_sum" not in generate_latest(ours)


def test_what_prometheus_client_refuses_is_refused() -> None:
    events = CounterFamily("t_events", "Events", ("a",))
    with pytest.raises(ValueError, match="non-negative"):
        events.labels("x").inc(-1)
    with pytest.raises(ValueError, match="label values"):
        events.labels("x", "y")
    with pytest.raises(ValueError, match="label values"):
        HistogramFamily("t_seconds", "Durations", ("a",), BUCKETS).labels()
    with pytest.raises(ValueError, match="ascending"):
        HistogramFamily("t_seconds", "Durations", (), (1, 0.5))
    with pytest.raises(ValueError, match="ascending"):
        HistogramFamily("t_seconds", "Durations", (), (math.inf,))


def test_the_registry_reserves_the_families_names() -> None:
    registry = CollectorRegistry()
    registry.register(Families(CounterFamily("t_events", "Events", ())))
    with pytest.raises(ValueError, match="Duplicated"):
        Counter("t_events", "Events again", registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Gauge("t_events_total", "A clash with the counter's sample", registry=registry)


def test_a_scrape_from_another_thread_copies_the_series_first() -> None:
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # the threads take turns inside a scrape's loop
    events = CounterFamily("t_events", "Events", ("n",))
    seconds = HistogramFamily("t_seconds", "Durations", ("n",), BUCKETS)
    registry = CollectorRegistry()
    registry.register(Families(events, seconds))
    stop = threading.Event()
    failures: list[BaseException] = []

    def scrape() -> None:
        try:
            while not stop.is_set():
                generate_latest(registry)
        except BaseException as exc:  # a "dictionary changed size during iteration"
            failures.append(exc)

    scraper = threading.Thread(target=scrape)
    scraper.start()
    try:
        for n in range(3000):
            events.labels(str(n)).inc()
            seconds.labels(str(n)).observe(0.1)
    finally:
        stop.set()
        scraper.join()
        sys.setswitchinterval(interval)
    assert failures == []
    assert generate_latest(registry).count(b"t_events_total{") == 3000
    assert generate_latest(registry).count(b"t_seconds_count{") == 3000


# Metrics itself: what observe() records, against prometheus_client's metrics of the same names,
# HELP, labels and buckets as before the series (fed what observe() fed them).
OBSERVED = frozenset(
    {
        "relaygate_requests",
        "relaygate_request_duration_seconds",
        "relaygate_overhead_seconds",
        "relaygate_time_to_first_token_seconds",
        "relaygate_upstream_attempts",
        "relaygate_tokens",
        "relaygate_cost_usd",
        "relaygate_requests_in_flight",
    }
)


class Reference:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "relaygate_requests",
            "Requests answered, by route, model and status",
            ("route", "model", "status"),
            registry=registry,
        )
        self.latency = Histogram(
            "relaygate_request_duration_seconds",
            "Total request latency seen by the gateway",
            ("route", "model"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.overhead = Histogram(
            "relaygate_overhead_seconds",
            "Time spent in the gateway itself (latency minus upstream and back-off)",
            ("route",),
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.ttft = Histogram(
            "relaygate_time_to_first_token_seconds",
            "Time to the first streamed byte sent to the caller",
            ("route", "model"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.attempts = Counter(
            "relaygate_upstream_attempts",
            "Upstream attempts by deployment and outcome",
            ("deployment", "outcome"),
            registry=registry,
        )
        self.tokens = Counter(
            "relaygate_tokens",
            "Tokens by model and kind (input, output, cache_read, cache_write)",
            ("model", "kind"),
            registry=registry,
        )
        self.cost = Counter(
            "relaygate_cost_usd",
            "Cost of answered requests in USD, by model and key name (no end users or tags: "
            "those are in the ledger's reports)",
            ("model", "key"),
            registry=registry,
        )
        self.in_flight = Gauge(
            "relaygate_requests_in_flight", "Requests being handled", registry=registry
        )

    def observe(self, ctx: RequestContext, model: str) -> None:
        status = str(ctx.status) if 100 <= ctx.status < 600 else "other"
        self.requests.labels(ctx.route, model, status).inc()
        self.latency.labels(ctx.route, model).observe(ctx.elapsed())
        self.overhead.labels(ctx.route).observe(ctx.overhead_seconds())
        ttft = self.ttft.labels(ctx.route, model)  # the series shows from the first request
        if ctx.first_token_at is not None:
            ttft.observe(ctx.first_token_at - ctx.started)
        for attempt in ctx.attempts:
            self.attempts.labels(attempt.deployment, attempt.outcome).inc()
        if ctx.cost_usd and ctx.key_name is not None:
            self.cost.labels(model, ctx.key_name).inc(ctx.cost_usd)
        if ctx.usage is not None:
            for kind, count in (
                ("input", ctx.usage.input_tokens),
                ("output", ctx.usage.output_tokens),
                ("cache_read", ctx.usage.cache_read_tokens),
                ("cache_write", ctx.usage.cache_write_tokens),
            ):
                if count:
                    self.tokens.labels(model, kind).inc(count)


def contexts() -> Iterator[tuple[RequestContext, str]]:
    """Requests of several routes, models and statuses; latencies on, between and beyond the
    buckets' bounds (each context's clock is ``started`` = 0 and ``perf_counter`` = its elapsed)."""
    usage = Usage(input_tokens=12, output_tokens=30, cache_read_tokens=0, cache_write_tokens=4)
    cases = [
        ("openai.chat", "gpt", 200, 0.1, None, 1, 0.0012, usage),
        ("openai.chat", "gpt", 200, 0.0001, 0.00005, 0, 0.0, None),
        ("anthropic.messages", "claude", 200, 3.0, 0.25, 2, 0.5, usage),
        ("openai.chat", "gpt", 429, 0.002, None, 0, 0.0, None),
        ("openai.chat", "gpt", 999, 200.0, None, 3, 1e-9, usage),
        ("anthropic.messages", "gpt", 502, 0.01, 0.01, 1, 0.0, None),
        ("openai.chat", "gpt", 200, 1.0, 0.5, 1, 0.0012, usage),
    ]
    for route, model, status, elapsed, ttft, attempts, cost, tokens in cases:
        ctx = RequestContext("r", route, "openai", key_name="team", model_used=model)
        ctx.started = 0.0
        ctx.status = status
        ctx.upstream_seconds = elapsed * 0.9
        ctx.first_token_at = ttft
        ctx.attempts = [
            AttemptRecord(f"dep-{n % 2}", "ok" if n == attempts - 1 else "error", status, 0.1)
            for n in range(attempts)
        ]
        ctx.cost_usd = cost
        ctx.usage = tokens
        yield ctx, model


def test_metrics_observe_renders_what_prometheus_clients_metrics_did(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    metrics, reference = Metrics({"gpt": "gpt", "claude": "claude"}), Reference()
    for round_ in range(3):
        for ctx, model in contexts():
            monkeypatch.setattr(time, "perf_counter", lambda ctx=ctx: ctx.upstream_seconds / 0.9)
            metrics.observe(ctx)
            reference.observe(ctx, model)
        metrics.in_flight.inc()
        reference.in_flight.inc()
        if round_:
            metrics.in_flight.dec()
            reference.in_flight.dec()
        assert_same(only(metrics.registry, OBSERVED), reference.registry)


def test_the_scrape_keeps_its_order_of_families() -> None:
    metrics = Metrics()
    metrics.observe(RequestContext("r", "openai.chat", "openai"))
    names = [metric.name for metric in metrics.registry.collect()]
    assert names == [
        "relaygate_requests",
        "relaygate_request_duration_seconds",
        "relaygate_overhead_seconds",
        "relaygate_time_to_first_token_seconds",
        "relaygate_upstream_attempts",
        "relaygate_tokens",
        "relaygate_cost_usd",
        "relaygate_requests_in_flight",
        "relaygate_breaker_state",
        "relaygate_breaker_transitions",
        "relaygate_breaker_panic",
        "relaygate_asyncio_tasks",
    ]


def test_the_workers_merged_scrape_is_prometheus_clients(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers publishing snapshots merge to what two prometheus_client workers did."""
    ours_dir, reference_dir = tmp_path / "ours", tmp_path / "reference"
    ours_dir.mkdir()
    reference_dir.mkdir()
    workers = [Metrics({"gpt": "gpt", "claude": "claude"}) for _ in range(2)]
    references = [Reference() for _ in range(2)]
    for n, (ctx, model) in enumerate(contexts()):
        monkeypatch.setattr(time, "perf_counter", lambda ctx=ctx: ctx.upstream_seconds / 0.9)
        workers[n % 2].observe(ctx)
        references[n % 2].observe(ctx, model)
    for metrics in workers:
        AllWorkers(ours_dir, only(metrics.registry, OBSERVED)).publish()
    for reference in references:
        AllWorkers(reference_dir, reference.registry).publish()
    merged = AllWorkers(ours_dir, CollectorRegistry()).merged()
    expected = AllWorkers(reference_dir, CollectorRegistry()).merged()
    # The merge's order follows the snapshot files' (random) names: compare the content.
    assert content(merged) == content(expected)
    assert b'relaygate_requests_total{model="gpt",route="openai.chat",status="200"} 3.0' in (
        generate_latest(merged)
    )


def content(registry: CollectorRegistry) -> dict[str, tuple[str, str, list[str]]]:
    text = generate_latest(registry).decode()
    return {
        family.name: (
            family.documentation,
            family.type,
            sorted(f"{s.name} {sorted(s.labels.items())} {s.value!r}" for s in family.samples),
        )
        for family in text_string_to_metric_families(text)
    }


def test_admission_decisions_render_as_prometheus_clients_counter() -> None:
    registry = CollectorRegistry()
    admission = AdmissionMetrics(registry)
    reference = CollectorRegistry()
    decisions = Counter(
        "relaygate_admission_decisions",
        "Admission decisions by result (admitted at once, after queueing, or why refused)",
        ("result",),
        registry=reference,
    )
    protected = Counter(
        "relaygate_admission_protected_refusals",
        "Refusals of requests whose key the priority reserve protects, by result (the same "
        "results as relaygate_admission_decisions, which counts them too)",
        ("result",),
        registry=reference,
    )
    children = {name: decisions.labels(name) for name in ADMISSION_RESULTS}
    protected_children = {name: protected.labels(name) for name in ADMISSION_RESULTS}
    for result, is_protected in (
        ("admitted", False),
        ("admitted", False),
        ("busy", True),
        ("queued", False),
        ("shed", False),
        ("key_limit", True),
        ("busy", False),
        ("admitted", False),
    ):
        admission.decision(result, is_protected)
        children[result].inc()
        if is_protected:
            protected_children[result].inc()
    names = frozenset({"relaygate_admission_decisions", "relaygate_admission_protected_refusals"})
    assert_same(only(registry, names), reference)
