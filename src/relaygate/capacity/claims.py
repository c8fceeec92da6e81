"""The claims hand-off of a shared limiter across worker processes.

Only the process that frees a slot hears of it, so a protected request waiting in another one
would lose the slot to that process's lower keys. A protected request about to wait claims the
next slot of each capped deployment it may use; lower keys' asks count the claims as held (the
shared limiter's ``behind`` count), so a slot freed in any process is left to the claimant, which
asks again every ``CLAIM_POLL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from relaygate.capacity.reserve import PriorityReserve
from relaygate.limits.asks import claims_ask
from relaygate.limits.limiter import Lease, RateLimiter
from relaygate.limits.releaser import Releaser
from relaygate.routing.catalog import Deployment

CLAIM_POLL_SECONDS = 0.002


class Claims:
    """Claims of the protected requests waiting in this process, on a shared limiter."""

    def __init__(
        self,
        limiter: RateLimiter,
        releaser: Releaser,
        notify: Callable[[], None],
        reserve: PriorityReserve,
    ) -> None:
        self._limiter = limiter
        self._releaser = releaser
        self._notify = notify
        self._reserve = reserve

    def protects(self, priority: int) -> bool:
        """Whether a waiter of ``priority`` claims the next slot (the reserve protects it)."""
        return self._reserve.protects(priority)

    def reach(self, priority: int) -> int:
        """How many processes' releases may serve a waiter of ``priority``: every worker's for a
        protected one (lower keys leave it the next slot freed anywhere), else this process's."""
        return self._reserve.workers if self._reserve.protects(priority) else 1

    async def claim(self, models: Sequence[Sequence[Deployment]], priority: int) -> Lease | None:
        """Claims on the next slot of every deployment of ``models`` with a concurrency cap, for
        a request of ``priority`` about to wait; None when it makes none (not protected, no such
        deployment, or as many claims as slots already)."""
        if not self.protects(priority):
            return None
        asks = [
            ask
            for deps in models
            for dep in deps
            if (ask := claims_ask(dep.id, dep.settings)) is not None
        ]
        if not asks:
            return None
        admission = await self._limiter.acquire(asks)
        return admission.lease if admission.admitted else None

    @staticmethod
    def wait(
        models: Sequence[Sequence[Deployment]], k: int, hold_of: Callable[[str], float | None]
    ) -> float | None:
        """Seconds until the ``k``-th slot freed on a deployment of ``models`` in any process,
        which lower keys leave to a protected waiter's claims: with every slot held, a
        deployment capped at ``limit`` frees one every typical hold (``hold_of``) / ``limit`` on
        average. This process's own admissions say little of it: they are its share of the
        traffic, which the kernel does not split evenly between the workers. None while no hold
        is known."""
        rate = 0.0
        for deps in models:
            for dep in deps:
                cap, hold = dep.settings.max_concurrency, hold_of(dep.id)
                if cap is not None and hold:
                    rate += cap / hold
        return k / rate if rate > 0 else None

    def unclaim(self, claims: Lease) -> None:
        """Drop the claims (off the hot path): lower keys may take the slots again."""
        self._releaser.submit(claims, (), self._notify)
