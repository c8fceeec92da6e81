from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

import pytest

from relaygate.routing.balance import least_outstanding, lowest_latency, order, weighted
from relaygate.routing.breaker import CircuitBreaker
from relaygate.routing.health import LATENCY_STALE_SECONDS, DeploymentHealth
from relaygate.settings.routing import BreakerSettings, Strategy

NOTHING: dict[str, DeploymentHealth] = {}


@dataclass(frozen=True)
class Dep:
    id: str
    weight: float = 1.0


def make_health(
    outstanding: int = 0, latency: float | None = None, at: float = 0.0
) -> DeploymentHealth:
    health = DeploymentHealth(CircuitBreaker("x", BreakerSettings(), lambda: 0.0))
    health.outstanding = outstanding
    if latency is not None:
        health.observe_latency(latency, at)
    return health


def test_weighted_first_pick_follows_weights() -> None:
    deps = [Dep("a", 3.0), Dep("b", 1.0)]
    rng = random.Random(3)
    firsts = Counter(weighted(deps, rng)[0].id for _ in range(20_000))
    assert firsts["a"] / 20_000 == pytest.approx(0.75, abs=0.02)


def test_every_strategy_returns_a_permutation() -> None:
    deps = [Dep("a"), Dep("b", 2.0), Dep("c", 0.5)]
    table = {"a": make_health(2, 0.3), "b": make_health(0)}
    strategies: tuple[Strategy, ...] = (
        "weighted",
        "least_outstanding",
        "lowest_latency",
        "ordered",
    )
    for strategy in strategies:
        got = order(strategy, deps, table.get, random.Random(1), 1.0)
        assert sorted(d.id for d in got) == ["a", "b", "c"]


def test_ordered_keeps_the_configured_order() -> None:
    deps = [Dep("primary", 0.01), Dep("backup", 100.0)]
    for seed in range(20):
        assert order("ordered", deps, NOTHING.get, random.Random(seed), 0.0) == deps


def test_least_outstanding_prefers_the_idle_deployment_per_weight() -> None:
    deps = [Dep("a"), Dep("b"), Dep("c", 4.0)]
    table = {"a": make_health(3), "b": make_health(1), "c": make_health(2)}
    got = least_outstanding(deps, table.get, random.Random(0))
    assert [d.id for d in got] == ["c", "b", "a"]  # 2/4 < 1/1 < 3/1


def test_least_outstanding_breaks_ties_at_random() -> None:
    deps = [Dep("a"), Dep("b")]
    rng = random.Random(5)
    firsts = Counter(least_outstanding(deps, NOTHING.get, rng)[0].id for _ in range(2000))
    assert 800 < firsts["a"] < 1200


def test_lowest_latency_orders_by_ewma_with_unmeasured_first() -> None:
    deps = [Dep("slow"), Dep("fast"), Dep("new")]
    table = {"slow": make_health(latency=0.5), "fast": make_health(latency=0.05)}
    got = lowest_latency(deps, table.get, random.Random(0), now=1.0)
    assert [d.id for d in got] == ["new", "fast", "slow"]


def test_lowest_latency_forgets_stale_samples() -> None:
    deps = [Dep("fast"), Dep("slow")]
    table = {
        "slow": make_health(latency=0.5, at=0.0),
        "fast": make_health(latency=0.05, at=LATENCY_STALE_SECONDS),
    }
    got = lowest_latency(deps, table.get, random.Random(0), now=LATENCY_STALE_SECONDS + 1)
    assert [d.id for d in got] == ["slow", "fast"]  # slow is re-measured


def test_ewma_moves_towards_new_samples() -> None:
    health = make_health(latency=1.0)
    health.observe_latency(0.0, 1.0)
    assert health.latency(1.0) == pytest.approx(0.7)
    for _ in range(30):
        health.observe_latency(0.1, 2.0)
    assert health.latency(2.0) == pytest.approx(0.1, abs=1e-3)
