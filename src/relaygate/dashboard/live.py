"""The overview's live numbers, read from the gateway's own Prometheus registry.

Nothing new is measured: a read collects the registry (what ``/metrics`` renders) and keeps the
counters; rates, latency quantiles and error rates come from the difference between this read
and one about ``SPAN_SECONDS`` earlier (the page polls every few seconds). Quantiles are
interpolated inside the histograms' buckets, so they are as coarse as those buckets.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

SPAN_SECONDS = 30.0
# A baseline older than this is from before the page was last watched: start over.
STALE_SECONDS = 3 * SPAN_SECONDS
BREAKER_STATES = {0.0: "closed", 1.0: "half-open", 2.0: "open"}
DEGRADATION_LEVELS = {0.0: "normal", 1.0: "reduced", 2.0: "degraded"}


@dataclass(slots=True)
class Counters:
    """Cumulative counters at one moment."""

    requests: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    errors: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    tokens: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cost: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    attempts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    failed_attempts: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    latency: dict[float, float] = field(default_factory=lambda: defaultdict(float))
    overhead: dict[float, float] = field(default_factory=lambda: defaultdict(float))


@dataclass(slots=True)
class Reading:
    """One collection of the registry: counters and the gauges shown as they are."""

    at: float
    counters: Counters
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]]

    def gauge(self, name: str, label: str) -> dict[str, float]:
        """A gauge's values by one label."""
        return {dict(labels).get(label, ""): v for labels, v in self.gauges.get(name, {}).items()}

    def scalar(self, name: str) -> float | None:
        values = self.gauges.get(name)
        return sum(values.values()) if values else None


def read_registry(registry: CollectorRegistry, at: float) -> Reading:
    counters = Counters()
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for family in registry.collect():
        for sample in family.samples:
            _add(counters, gauges, family.type, sample.name, sample.labels, sample.value)
    return Reading(at, counters, gauges)


def _add(
    c: Counters,
    gauges: dict[str, dict[tuple[tuple[str, str], ...], float]],
    kind: str,
    name: str,
    labels: dict[str, str],
    value: float,
) -> None:
    if name == "relaygate_requests_total":
        model = labels.get("model", "")
        c.requests[model] += value
        status = labels.get("status", "")
        if not status.isdigit() or int(status) >= 500:
            c.errors[model] += value
    elif name == "relaygate_tokens_total":
        c.tokens[labels.get("model", "")] += value
    elif name == "relaygate_cost_usd_total":
        c.cost[labels.get("model", "")] += value
    elif name == "relaygate_upstream_attempts_total":
        deployment = labels.get("deployment", "")
        c.attempts[deployment] += value
        if labels.get("outcome") != "ok":
            c.failed_attempts[deployment] += value
    elif name == "relaygate_request_duration_seconds_bucket":
        c.latency[float(labels["le"])] += value
    elif name == "relaygate_overhead_seconds_bucket":
        c.overhead[float(labels["le"])] += value
    elif kind == "gauge":
        gauges[name][tuple(sorted(labels.items()))] = value


@dataclass(frozen=True, slots=True)
class ModelRow:
    name: str
    requests: float
    rps: float
    error_rate: float
    tokens_per_minute: float
    cost_per_minute_usd: float


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    name: str
    attempts_per_second: float
    failure_rate: float
    breaker: str
    adaptive_limit: float | None
    outstanding: float | None
    latency_ewma_ms: float | None


@dataclass(frozen=True, slots=True)
class Overview:
    span_seconds: float
    requests_total: float
    rps: float
    error_rate: float
    p50_ms: float | None
    p99_ms: float | None
    overhead_p50_ms: float | None
    overhead_p99_ms: float | None
    tokens_per_minute: float
    cost_per_minute_usd: float
    models: list[ModelRow]
    deployments: list[DeploymentRow]
    queue_depth: float | None
    in_flight: float | None
    degradation: dict[str, str]
    redis_up: float | None
    database_up: float | None
    ledger_healthy: float | None
    cache_hit_ratio: dict[str, float]
    pipeline_jobs: dict[str, dict[str, float]]


class LiveSampler:
    """Keeps the recent readings of one registry and turns them into an ``Overview``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._readings: deque[Reading] = deque()

    def overview(self, registry: CollectorRegistry) -> Overview:
        now = self._clock()
        current = read_registry(registry, now)
        readings = self._readings
        if readings and now - readings[-1].at > STALE_SECONDS:
            readings.clear()
        readings.append(current)
        while len(readings) > 2 and readings[1].at <= now - SPAN_SECONDS:
            readings.popleft()
        return summarise(readings[0], current)


def summarise(base: Reading, current: Reading) -> Overview:
    span = current.at - base.at
    old, new = base.counters, current.counters

    def rate(before: dict[str, float], after: dict[str, float], key: str) -> float:
        return (after.get(key, 0.0) - before.get(key, 0.0)) / span if span > 0 else 0.0

    requests = sum(new.requests.values()) - sum(old.requests.values())
    errors = sum(new.errors.values()) - sum(old.errors.values())
    models = [
        ModelRow(
            name,
            new.requests[name],
            rate(old.requests, new.requests, name),
            _ratio(new.errors.get(name, 0.0) - old.errors.get(name, 0.0), _delta(old, new, name)),
            60 * rate(old.tokens, new.tokens, name),
            60 * rate(old.cost, new.cost, name),
        )
        for name in sorted(new.requests)
    ]
    breakers = current.gauge("relaygate_breaker_state", "deployment")
    limits = current.gauge("relaygate_adaptive_concurrency_limit", "deployment")
    outstanding = current.gauge("relaygate_deployment_outstanding", "deployment")
    ewma = current.gauge("relaygate_deployment_latency_ewma_seconds", "deployment")
    deployments = [
        DeploymentRow(
            name,
            rate(old.attempts, new.attempts, name),
            _ratio(
                new.failed_attempts.get(name, 0.0) - old.failed_attempts.get(name, 0.0),
                new.attempts.get(name, 0.0) - old.attempts.get(name, 0.0),
            ),
            BREAKER_STATES.get(breakers.get(name, 0.0), "closed"),
            limits.get(name),
            outstanding.get(name),
            ewma[name] * 1000 if name in ewma else None,
        )
        for name in sorted(set(breakers) | set(new.attempts) | set(limits))
    ]
    return Overview(
        span_seconds=span,
        requests_total=sum(new.requests.values()),
        rps=requests / span if span > 0 else 0.0,
        error_rate=_ratio(errors, requests),
        p50_ms=_quantile_ms(old.latency, new.latency, 0.5),
        p99_ms=_quantile_ms(old.latency, new.latency, 0.99),
        overhead_p50_ms=_quantile_ms(old.overhead, new.overhead, 0.5),
        overhead_p99_ms=_quantile_ms(old.overhead, new.overhead, 0.99),
        tokens_per_minute=60 * _total_rate(old.tokens, new.tokens, span),
        cost_per_minute_usd=60 * _total_rate(old.cost, new.cost, span),
        models=models,
        deployments=deployments,
        queue_depth=current.scalar("relaygate_admission_queue_depth"),
        in_flight=current.scalar("relaygate_requests_in_flight"),
        degradation={
            model: DEGRADATION_LEVELS.get(level, str(level))
            for model, level in current.gauge("relaygate_degradation_level", "model").items()
        },
        redis_up=current.scalar("relaygate_shared_limits_up"),
        database_up=current.scalar("relaygate_database_up"),
        ledger_healthy=current.scalar("relaygate_ledger_healthy"),
        cache_hit_ratio=current.gauge("relaygate_cache_hit_ratio", "model"),
        pipeline_jobs=_jobs(current),
    )


def _delta(old: Counters, new: Counters, model: str) -> float:
    return new.requests.get(model, 0.0) - old.requests.get(model, 0.0)


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole > 0 else 0.0


def _total_rate(old: dict[str, float], new: dict[str, float], span: float) -> float:
    return (sum(new.values()) - sum(old.values())) / span if span > 0 else 0.0


def _quantile_ms(old: dict[float, float], new: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile of the observations between two readings of a cumulative histogram,
    interpolated linearly inside its bucket; None without observations."""
    bounds = sorted(new)
    counts = [new[b] - old.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0.0
    if total <= 0:
        return None
    wanted = q * total
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= wanted:
            if math.isinf(bound):
                return lower * 1000
            inside = cumulative - below
            share = (wanted - below) / inside if inside > 0 else 1.0
            return (lower + (bound - lower) * share) * 1000
        lower, below = bound, cumulative
    return lower * 1000


def _jobs(reading: Reading) -> dict[str, dict[str, float]]:
    jobs: dict[str, dict[str, float]] = defaultdict(dict)
    for labels, value in reading.gauges.get("relaygate_pipeline_jobs", {}).items():
        named = dict(labels)
        jobs[named.get("pipeline", "")][named.get("status", "")] = value
    return dict(jobs)


def samples(registry: CollectorRegistry, names: frozenset[str]) -> dict[str, list[Sample]]:
    """The samples of the named series (``..._total`` for counters), by series name."""
    found: dict[str, list[Sample]] = defaultdict(list)
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in names:
                found[sample.name].append(Sample(dict(sample.labels), sample.value))
    return found


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float
