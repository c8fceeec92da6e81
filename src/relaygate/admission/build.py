"""Build the process's Admitter from settings: Redis-shared limits when a URL is set."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from relaygate.admission.gate import Admitter, RouteLookup
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.limits.limiter import RateLimiter
from relaygate.limits.memory import MemoryLimiter
from relaygate.limits.redis import RedisLimiter
from relaygate.limits.resilient import ResilientLimiter
from relaygate.settings.limits import LimitSettings


async def build_admitter(
    limits: LimitSettings,
    redis_url: str | None,
    lookup: RouteLookup,
    registry: CollectorRegistry,
    workers: int = 1,
) -> Admitter:
    """The admitter, started. Without ``redis_url`` the limits live in this process's memory;
    with it they are shared, and a Redis that is down at start-up only starts the fallback.
    ``workers`` is how many processes share them (sizes the high-priority reserve)."""
    metrics = AdmissionMetrics(registry)
    limiter: RateLimiter
    if redis_url:
        shared = limits.shared
        redis = RedisLimiter.from_url(
            redis_url, timeout=shared.timeout_seconds, lease_ttl=shared.lease_ttl_seconds
        )
        resilient = ResilientLimiter(
            redis,
            fail_open=shared.on_failure == "open",
            probe_seconds=shared.probe_seconds,
            on_state=metrics.shared_state,
        )
        await resilient.start()
        limiter = resilient
    else:
        limiter = MemoryLimiter()
    admitter = Admitter(limits, limiter, lookup=lookup, metrics=metrics, workers=workers)
    admitter.start()
    return admitter
