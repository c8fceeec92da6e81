"""Load balancing: the order in which a model's deployments are tried for one request.

The first deployment in the order takes the request; the rest are the failover order. Every
strategy returns a full permutation, so failover works the same whichever balances.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from relaygate.routing.health import DeploymentHealth
from relaygate.settings.routing import Strategy


class Candidate(Protocol):
    """What balancing needs of a deployment."""

    @property
    def id(self) -> str: ...

    @property
    def weight(self) -> float: ...


C = TypeVar("C", bound=Candidate)
HealthOf = Callable[[str], DeploymentHealth | None]


def order(
    strategy: Strategy,
    candidates: Sequence[C],
    health: HealthOf,
    rng: random.Random,
    now: float,
) -> list[C]:
    """``candidates`` in the order to try them under ``strategy``."""
    if len(candidates) == 1 or strategy == "ordered":
        return list(candidates)
    if strategy == "least_outstanding":
        return least_outstanding(candidates, health, rng)
    if strategy == "lowest_latency":
        return lowest_latency(candidates, health, rng, now)
    return weighted(candidates, rng)


def weighted(candidates: Sequence[C], rng: random.Random) -> list[C]:
    """A weighted random permutation: P(first) is proportional to weight.

    Efraimidis-Spirakis: sorting by ``u ** (1 / w)`` descending, ``u`` uniform in (0, 1).
    """
    return sorted(candidates, key=lambda c: rng.random() ** (1.0 / c.weight), reverse=True)


def least_outstanding(candidates: Sequence[C], health: HealthOf, rng: random.Random) -> list[C]:
    """Fewest requests in flight per unit of weight first; ties broken at random."""

    def key(candidate: C) -> tuple[float, float]:
        state = health(candidate.id)
        busy = state.outstanding if state is not None else 0
        return (busy / candidate.weight, rng.random())

    return sorted(candidates, key=key)


def lowest_latency(
    candidates: Sequence[C], health: HealthOf, rng: random.Random, now: float
) -> list[C]:
    """Lowest latency EWMA first; a deployment with no recent sample goes first to be measured.

    Unmeasured deployments are ordered among themselves by weight, so a fresh start spreads out.
    """
    unmeasured: list[C] = []
    measured: list[tuple[float, C]] = []
    for candidate in candidates:
        state = health(candidate.id)
        latency = state.latency(now) if state is not None else None
        if latency is None:
            unmeasured.append(candidate)
        else:
            measured.append((latency, candidate))
    measured.sort(key=lambda pair: pair[0])
    return [*weighted(unmeasured, rng), *(candidate for _, candidate in measured)]
