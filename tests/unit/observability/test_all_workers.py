"""Metrics shared by the workers of ``serve --workers N``: whichever worker renders, the scrape is
the merge of every worker's snapshot. Each ``Metrics`` here stands for one worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

import relaygate.core.context
from relaygate.cache import CacheStats
from relaygate.core.context import RequestContext
from relaygate.observability.all_workers import AllWorkers
from relaygate.observability.cache_metrics import CacheMetrics
from relaygate.observability.metrics import Metrics
from relaygate.routing.breaker import BreakerState

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
REQUESTS = (
    "relaygate_requests_total",
    (("model", "m"), ("route", "openai.chat"), ("status", "200")),
)


def scrape(metrics: Metrics) -> Samples:
    found: Samples = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"duplicate series {key}"
            found[key] = sample.value
    return found


NOW = 1_000.0


@pytest.fixture(autouse=True)
def stopped_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A request's duration is exactly what the test says: on a loaded machine the real clock
    moved on by more than the 4 ms between a 1 ms answer and its 5 ms bucket's bound."""
    monkeypatch.setattr(relaygate.core.context, "time", SimpleNamespace(perf_counter=lambda: NOW))


def answer(metrics: Metrics, n: int, seconds: float = 0.0) -> None:
    for _ in range(n):
        ctx = RequestContext("r", "openai.chat", "openai", model_requested="m", model_used="m")
        ctx.started = NOW - seconds
        metrics.observe(ctx)


def shared(metrics: Metrics) -> AllWorkers:
    assert metrics.all_workers is not None
    return metrics.all_workers


def worker(directory: Path) -> Metrics:
    return Metrics({"m": "m"}, shared_dir=directory)


def test_counters_and_histograms_are_summed_over_workers(tmp_path: Path) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    answer(first, 3, seconds=0.001)
    answer(second, 5, seconds=3.0)
    shared(second).publish()  # as its publishing loop would

    found = scrape(first)

    assert found[REQUESTS] == 8
    latency = "relaygate_request_duration_seconds"
    labels = (("model", "m"), ("route", "openai.chat"))
    assert found[(f"{latency}_count", labels)] == 8
    assert found[(f"{latency}_bucket", (("le", "0.005"), *labels))] == 3
    assert found[(f"{latency}_bucket", (("le", "5.0"), *labels))] == 8
    assert found[(f"{latency}_bucket", (("le", "+Inf"), *labels))] == 8
    assert not any(name.endswith("_created") for name, _ in found)


def test_gauges_merge_as_each_one_says(tmp_path: Path) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    first.in_flight.inc(2)
    second.in_flight.inc(3)
    first.breaker_changed("d#0", None, BreakerState.CLOSED)
    second.breaker_changed("d#0", None, BreakerState.OPEN)
    shared(second).publish()

    found = scrape(first)

    assert found[("relaygate_requests_in_flight", ())] == 5  # sum
    assert found[("relaygate_breaker_state", (("deployment", "d#0"),))] == 2  # max
    assert found[("relaygate_asyncio_tasks", ())] == 0  # scrape-time collectors too, once


def test_a_scrape_sees_its_own_worker_now_and_the_others_as_last_published(
    tmp_path: Path,
) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    answer(second, 2)
    shared(second).publish()
    answer(second, 10)  # not published yet
    answer(first, 1)
    assert scrape(first)[REQUESTS] == 3
    assert scrape(second)[REQUESTS] == 13


def test_cache_hit_ratio_is_recomputed_from_every_workers_lookups(tmp_path: Path) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    first_cache = CacheMetrics(first.registry, CacheStats)
    second_cache = CacheMetrics(second.registry, CacheStats)
    first_cache.record("m", "hit")
    for _ in range(3):
        second_cache.record("m", "miss")
    shared(second).publish()

    assert scrape(first)[("relaygate_cache_hit_ratio", (("model", "m"),))] == 0.25


async def test_an_exited_worker_leaves_its_counters_and_takes_its_gauges(tmp_path: Path) -> None:
    first, second = worker(tmp_path), worker(tmp_path)
    answer(second, 4)
    second.in_flight.inc(7)
    await second.close()

    found = scrape(first)

    assert found[REQUESTS] == 4
    assert found[("relaygate_requests_in_flight", ())] == 0


def test_a_crashed_workers_gauges_are_dropped_at_the_next_scrape(tmp_path: Path) -> None:
    first, crashed = worker(tmp_path), worker(tmp_path)
    answer(crashed, 4)
    crashed.in_flight.inc(7)
    shared(crashed).publish()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for path in tmp_path.glob(f"*_{os.getpid()}-*.db"):
        if crashed_tag(crashed) in path.name:
            path.rename(path.with_name(path.name.replace(str(os.getpid()), str(dead.pid), 1)))

    found = scrape(first)

    assert found[REQUESTS] == 4
    assert found[("relaygate_requests_in_flight", ())] == 0


def crashed_tag(metrics: Metrics) -> str:
    return shared(metrics).tag


def test_a_single_process_renders_its_own_registry() -> None:
    alone = Metrics({"m": "m"})
    answer(alone, 2)
    assert b'relaygate_requests_total{model="m",route="openai.chat",status="200"} 2.0' in (
        alone.render()
    )
    assert alone.all_workers is None


async def test_a_worker_stops_cleanly_when_the_shared_directory_is_gone(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    gone = worker(tmp_path / "gone")
    await gone.close()
    assert "metrics snapshot for the other workers not written" in caplog.text
