"""A model chain's governed deployments: what admission reserves a slot on and the attempt loop
takes slots of."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from relaygate.limits.asks import deployment_is_capped
from relaygate.routing.catalog import Deployment, ModelRoute
from relaygate.routing.planner import model_chain

RouteLookup = Callable[[str], ModelRoute | None]


@dataclass(frozen=True, slots=True)
class Pool:
    """The governed deployments of a model chain, for admission and the attempt loop.

    ``models`` holds the deployments of the chain's models in order, up to the first model
    with an ungoverned deployment (``open_ended``): that model can always be tried without a
    slot, so admission never needs to reserve past it.
    """

    models: tuple[tuple[Deployment, ...], ...]
    open_ended: bool
    governed: frozenset[str]
    counts_tokens: bool


def pool_of(route: ModelRoute, lookup: RouteLookup, adaptive: bool) -> Pool | None:
    """The route's pool, or None when no deployment of its chain has a cap."""
    models: list[tuple[Deployment, ...]] = []
    governed: set[str] = set()
    tokens = False
    open_ended = False
    for model in model_chain(route, lookup):
        capped = tuple(d for d in model.deployments if adaptive or deployment_is_capped(d.settings))
        governed.update(d.id for d in capped)
        tokens = tokens or any(d.settings.tpm is not None for d in capped)
        if open_ended:
            continue
        if len(capped) < len(model.deployments):
            open_ended = True
        else:
            models.append(capped)
    if not governed:
        return None
    return Pool(tuple(models), open_ended, frozenset(governed), tokens)
