"""What a finished request teaches the controllers: each upstream attempt's latency and outcome
go to its deployment's adaptive concurrency limit and to the model's degradation level."""

from __future__ import annotations

from relaygate.admission.degrade import DegradeLevels
from relaygate.capacity.adaptive import AdaptiveLimits
from relaygate.core.context import RequestContext
from relaygate.routing.catalog import ModelRoute

OVERLOAD_STATUSES = frozenset({429, 503, 529})
OVERLOAD_OUTCOMES = frozenset({"timeout", "overloaded", "rate_limited"})


def learn(
    route: ModelRoute, ctx: RequestContext, adaptive: AdaptiveLimits, degrade: DegradeLevels
) -> None:
    """Feed each upstream attempt to its deployment's adaptive limit and the model's level."""
    level = degrade.get(route.name) if degrade.enabled else None
    for attempt in ctx.attempts:
        failed = attempt.outcome != "ok"
        overloaded = failed and (
            attempt.status in OVERLOAD_STATUSES or attempt.outcome in OVERLOAD_OUTCOMES
        )
        gate = adaptive.find(attempt.deployment) if adaptive.enabled else None
        if gate is not None and (overloaded or not failed):
            gate.sample(attempt.seconds, overloaded)
        if level is not None and any(d.id == attempt.deployment for d in route.deployments):
            error = overloaded or (failed and (attempt.status >= 500 or attempt.status == 0))
            level.record(attempt.seconds, error)
