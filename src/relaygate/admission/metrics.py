"""Admission metrics, registered on the app's own Prometheus registry."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relaygate.admission.degrade import Level, Signals
from relaygate.observability.series import CounterFamily, Families

WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
RESULTS = (
    "admitted",
    "queued",
    "key_limit",
    "busy",
    "queue_full",
    "queue_timeout",
    "shed",
    "shared_unavailable",
)


class AdmissionMetrics:
    """Counters and gauges for admission, adaptive limits, degradation and the shared store."""

    def __init__(self, registry: CollectorRegistry) -> None:
        # Counted per request: a plain number on the event loop (observability.series), not a
        # prometheus_client Counter and its lock.
        decisions = CounterFamily(
            "relaygate_admission_decisions",
            "Admission decisions by result (admitted at once, after queueing, or why refused)",
            ("result",),
        )
        # Counted per refusal of a protected key (a surge's refusals): lock-free too.
        protected = CounterFamily(
            "relaygate_admission_protected_refusals",
            "Refusals of requests whose key the priority reserve protects, by result (the same "
            "results as relaygate_admission_decisions, which counts them too)",
            ("result",),
        )
        registry.register(Families(decisions, protected))
        self._results = {name: decisions.labels(name) for name in RESULTS}
        self._protected = {name: protected.labels(name) for name in RESULTS}
        self.queue_depth = Gauge(
            "relaygate_admission_queue_depth",
            "Requests waiting in the admission queues",
            registry=registry,
        )
        self.queue_wait = Histogram(
            "relaygate_admission_queue_wait_seconds",
            "Time admitted requests spent in the admission queue",
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self._adaptive = Gauge(
            "relaygate_adaptive_concurrency_limit",
            "Adaptive concurrency limit per deployment",
            ("deployment",),
            registry=registry,
        )
        self._level = Gauge(
            "relaygate_degradation_level",
            "Degradation level per model (0 normal, 1 reduced, 2 degraded)",
            ("model",),
            registry=registry,
        )
        self._transitions = Counter(
            "relaygate_degradation_transitions",
            "Degradation level changes per model and level entered",
            ("model", "level"),
            registry=registry,
        )
        self.shared_up = Gauge(
            "relaygate_shared_limits_up",
            "1 while limits are shared through Redis, 0 while this process uses local limits",
            registry=registry,
        )
        self._shed = Counter(
            "relaygate_shed_requests",
            "Requests refused by load shedding, by reason (loop_lag: this process's CPU is "
            "saturated; degraded: the model's degradation level sheds the key's priority)",
            ("reason",),
            registry=registry,
        )
        self._loop_lag = Gauge(
            "relaygate_event_loop_lag_seconds",
            "Smoothed event-loop scheduling lag of this process",
            registry=registry,
        )
        self.shared_outages = Counter(
            "relaygate_shared_limits_outages",
            "Times the shared limit store became unreachable",
            registry=registry,
        )

    def watch_loop_lag(self, lag: Callable[[], float]) -> None:
        """Report ``lag()`` (seconds, the smoothed event-loop lag) as a gauge at each scrape."""
        self._loop_lag.set_function(lag)

    def shed(self, reason: str) -> None:
        """Count one request shed for ``reason`` (``loop_lag``, ``degraded``)."""
        self._shed.labels(reason).inc()

    def decision(self, result: str, protected: bool = False) -> None:
        """Count one admission decision; ``protected``: of a request the reserve protects."""
        self._results[result].value += 1.0
        if protected:
            self._protected[result].value += 1.0

    def adaptive_limit(self, deployment: str, limit: int) -> None:
        self._adaptive.labels(deployment).set(limit)

    def level_changed(self, model: str, before: Level, after: Level, signals: Signals) -> None:
        self._level.labels(model).set(int(after))
        self._transitions.labels(model, after.name.lower()).inc()

    def shared_state(self, up: bool) -> None:
        if not up:
            self.shared_outages.inc()
        self.shared_up.set(1 if up else 0)
