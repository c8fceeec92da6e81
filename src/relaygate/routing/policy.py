"""A model's routing policy, built once from its settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field

from relaygate.routing.retry import RetryPolicy
from relaygate.settings.routing import RoutingSettings, Strategy


@dataclass(slots=True, frozen=True)
class RoutePolicy:
    """How one model balances, retries and bounds a request."""

    strategy: Strategy = "weighted"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    deadline_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: RoutingSettings) -> RoutePolicy:
        return cls(
            strategy=settings.strategy,
            retry=RetryPolicy.from_settings(settings),
            deadline_seconds=settings.deadline_seconds,
        )


DEFAULT_POLICY = RoutePolicy()
