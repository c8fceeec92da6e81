"""The overview's live numbers from a metrics registry, the page renderer's escaping, and the
package's shipped assets."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from relaygate.dashboard.live import LiveSampler, read_registry, summarise
from relaygate.dashboard.render import ASSETS, TEMPLATES, render


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _registry() -> tuple[CollectorRegistry, Counter, Histogram]:
    registry = CollectorRegistry()
    requests = Counter("relaygate_requests", "", ("route", "model", "status"), registry=registry)
    latency = Histogram(
        "relaygate_request_duration_seconds",
        "",
        ("route", "model"),
        buckets=(0.01, 0.1, 1.0),
        registry=registry,
    )
    breaker = Gauge("relaygate_breaker_state", "", ("deployment",), registry=registry)
    breaker.labels("gpt#0").set(2)
    return registry, requests, latency


def test_rates_and_quantiles_come_from_the_difference_between_polls() -> None:
    registry, requests, latency = _registry()
    requests.labels("chat", "gpt", "200").inc(100)  # before the first poll: not in the rates
    clock = Clock()
    sampler = LiveSampler(clock)
    first = sampler.overview(registry)
    assert first.rps == 0.0 and first.p99_ms is None and first.requests_total == 100
    clock.now += 10
    requests.labels("chat", "gpt", "200").inc(45)
    requests.labels("chat", "gpt", "502").inc(5)
    for _ in range(90):
        latency.labels("chat", "gpt").observe(0.005)
    for _ in range(10):
        latency.labels("chat", "gpt").observe(0.5)
    second = sampler.overview(registry)
    assert second.span_seconds == 10
    assert second.rps == pytest.approx(5.0)
    assert second.error_rate == pytest.approx(0.1)
    assert second.p50_ms is not None and 0 < second.p50_ms <= 10
    assert second.p99_ms is not None and 100 < second.p99_ms <= 1000
    [model] = second.models
    assert (model.name, model.requests, model.rps) == ("gpt", 150, pytest.approx(5.0))
    [deployment] = second.deployments
    assert (deployment.name, deployment.breaker) == ("gpt#0", "open")


def test_a_stale_baseline_is_dropped() -> None:
    registry, requests, _ = _registry()
    clock = Clock()
    sampler = LiveSampler(clock)
    sampler.overview(registry)
    clock.now += 3600  # nobody watched for an hour
    requests.labels("chat", "gpt", "200").inc(3600)
    assert sampler.overview(registry).rps == 0.0  # not 1/s averaged over the hour


def test_summarise_without_time_between_readings_has_no_rates() -> None:
    registry, requests, _ = _registry()
    requests.labels("chat", "gpt", "200").inc()
    reading = read_registry(registry, 5.0)
    overview = summarise(reading, reading)
    assert overview.rps == 0.0 and overview.error_rate == 0.0


def test_pages_escape_what_they_show() -> None:
    body = render("error.html", message='<script>alert("x")</script>').decode()
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body


def test_the_package_ships_its_templates_and_assets() -> None:
    for name in ("htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "dashboard.js"):
        assert ASSETS[name].body
    assert ASSETS["htmx.min.js"].content_type.startswith("text/javascript")
    assert ASSETS["uPlot.min.css"].content_type.startswith("text/css")
    assert {"htmx.LICENSE", "uPlot.LICENSE"} <= set(ASSETS)
    for template in TEMPLATES.list_templates():
        TEMPLATES.get_template(template)
