"""Prometheus metrics, kept in a registry owned by the app (no module-level collectors)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from relaygate.relay.context import RequestContext

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "relaygate_requests",
            "Requests answered, by route, model and status",
            ("route", "model", "status"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "relaygate_request_duration_seconds",
            "Total request latency seen by the gateway",
            ("route", "model"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.overhead = Histogram(
            "relaygate_overhead_seconds",
            "Time spent in the gateway itself (latency minus upstream and back-off)",
            ("route",),
            buckets=OVERHEAD_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "relaygate_time_to_first_token_seconds",
            "Time to the first streamed byte sent to the caller",
            ("route", "model"),
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.attempts = Counter(
            "relaygate_upstream_attempts",
            "Upstream attempts by deployment and outcome",
            ("deployment", "outcome"),
            registry=self.registry,
        )
        self.tokens = Counter(
            "relaygate_tokens",
            "Tokens by model and kind (input, output, cache_read, cache_write)",
            ("model", "kind"),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "relaygate_requests_in_flight", "Requests being handled", registry=self.registry
        )

    def observe(self, ctx: RequestContext) -> None:
        model = ctx.model_used or ctx.model_requested or "-"
        self.requests.labels(ctx.route, model, str(ctx.status)).inc()
        self.latency.labels(ctx.route, model).observe(ctx.elapsed())
        self.overhead.labels(ctx.route).observe(ctx.overhead_seconds())
        ttft = ctx.ttft_seconds()
        if ttft is not None:
            self.ttft.labels(ctx.route, model).observe(ttft)
        for attempt in ctx.attempts:
            self.attempts.labels(attempt.deployment, attempt.outcome).inc()
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

    def render(self) -> bytes:
        return generate_latest(self.registry)
