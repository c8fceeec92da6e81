"""The attempt plan: a model's deployments in balancer order, then each fallback model's."""

from __future__ import annotations

import random
from collections.abc import Callable

from relaygate.relay.catalog import Deployment, ModelRoute


def plan_attempts(
    route: ModelRoute, lookup: Callable[[str], ModelRoute | None], rng: random.Random
) -> list[Deployment]:
    """Deployments to try in order: weighted-random order within each model, fallbacks after."""
    plan: list[Deployment] = []
    seen: set[str] = set()
    models = [route]
    for name in route.fallbacks:
        fallback = lookup(name)
        if fallback is not None:
            models.append(fallback)
    for model in models:
        if model.name in seen:
            continue
        seen.add(model.name)
        plan.extend(_weighted_order(model.deployments, rng))
    return plan


def _weighted_order(deployments: tuple[Deployment, ...], rng: random.Random) -> list[Deployment]:
    if len(deployments) == 1:
        return [deployments[0]]
    # Efraimidis-Spirakis: sort by u^(1/w) descending gives a weighted random permutation.
    keyed = sorted(deployments, key=lambda d: rng.random() ** (1.0 / d.weight), reverse=True)
    return keyed
