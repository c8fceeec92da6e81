"""Deployment caps taken per attempt: rpm, tpm, max_concurrency and the adaptive limit.

Admission reserves one slot on the first deployment of the request's model chain that has room
(so a request waits in the queue only while every deployment is full); the attempt loop uses that
reservation for its first try there and takes a fresh slot for every other governed deployment it
tries, through ``DeploymentSlots``. A slot is freed when its attempt ends: its concurrency lease
goes back, its TPM reservation is trued up with the request's usage, and the waiting queues hear
of it. A reservation no attempt used gives back its RPM and TPM tokens as well.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from relaygate.capacity.adaptive import AdaptiveLimits, GradientLimit
from relaygate.capacity.claims import Claims
from relaygate.capacity.pools import Pool
from relaygate.capacity.releases import Hold, Releases, kth_release
from relaygate.capacity.reserve import PriorityReserve, ProtectedDemand
from relaygate.core.types import Usage
from relaygate.limits.asks import deployment_asks
from relaygate.limits.limiter import (
    ADMITTED,
    CONCURRENCY_RETRY_SECONDS,
    Admission,
    BucketAsk,
    BucketKind,
    BucketSettle,
    Lease,
    RateLimiter,
)
from relaygate.limits.memory import MemoryLimiter
from relaygate.limits.releaser import Releaser
from relaygate.routing.catalog import Deployment


class Slot:
    """One attempt's (or admission's) place under one deployment's caps."""

    __slots__ = (
        "_demand",
        "_gate",
        "_hold",
        "_lease",
        "_protected",
        "_rates",
        "_released",
        "_source",
        "deployment",
    )

    def __init__(
        self,
        source: SlotSource,
        deployment: str,
        lease: Lease | None,
        gate: GradientLimit | None,
        rates: tuple[BucketAsk, ...],
        demand: ProtectedDemand | None = None,
        protected: bool = False,
        hold: tuple[Releases, Hold] | None = None,
    ) -> None:
        self._source = source
        self.deployment = deployment
        self._lease = lease
        self._gate = gate
        self._rates = rates
        self._demand = demand
        self._protected = protected
        self._hold = hold
        self._released = False

    @property
    def lease(self) -> Lease | None:
        return self._lease

    def release(self, usage: Usage | None, used: bool = True) -> None:
        """Free the slot once (never raises); ``used`` is false for a reservation never tried."""
        if self._released:
            return
        self._released = True
        if self._gate is not None:
            self._gate.release()
        if self._demand is not None:
            self._demand.end(self._protected)
        if self._hold is not None:
            releases, hold = self._hold
            releases.end(hold)
        settles: list[BucketSettle] = []
        for ask in self._rates:
            if ask.name.endswith(":tpm"):
                actual = usage.total_tokens if used and usage else 0
                settles.append(BucketSettle.true_up(ask, actual))
            elif not used:
                settles.append(BucketSettle.true_up(ask, 0))
        self._source.give_back(self._lease, settles)


class SlotSource:
    """Takes and frees deployment slots for one process's admitter."""

    def __init__(
        self,
        limiter: RateLimiter,
        adaptive: AdaptiveLimits,
        releaser: Releaser,
        notify: Callable[[], None],
        poll_seconds: float,
        reserve: PriorityReserve | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limiter = limiter
        self._local = limiter if isinstance(limiter, MemoryLimiter) else None
        self._adaptive = adaptive
        self._adaptive_on = adaptive.enabled  # its settings are frozen
        self._releaser = releaser
        self._notify = notify
        self._poll = poll_seconds
        self._reserve = reserve if reserve is not None and reserve.enabled else None
        # With a shared limiter, a protected request waiting in this process claims the next
        # slot freed in any process: lower keys' asks count the claims as held.
        self.claims = (
            Claims(limiter, releaser, notify, self._reserve)
            if self._reserve is not None and self._local is None
            else None
        )
        self._clock = clock
        # Each deployment's holds in this process, protected ones apart: only the others'
        # releases make room for an unprotected request while the reserve is kept.
        self._releases: dict[tuple[str, bool], Releases] = {}
        # Each deployment's caps for a request of no tokens (the catalog is fixed for a process).
        self._no_token_asks: dict[str, list[BucketAsk]] = {}

    def forecast(self, pool: Pool, k: int, priority: int = 0) -> float | None:
        """Seconds until the ``k``-th slot of ``pool`` that a request of ``priority`` may use
        is expected back, from the slots this process holds; None while unknown (too few held,
        or no hold has ended yet).

        A request the reserve protects is left the next slot freed in any worker (its claims):
        with a shared limiter it expects the deployments' k-th release anywhere, from their
        caps and typical holds (``Claims.wait``); with limits in this process, None (the
        queue's admission rate says it: every release is heard here). With w workers, lower
        keys compete with every worker's newcomers for a slot coming back (the shared limiter
        has no queue), so the k-th in line here counts on only one in w of this process's
        releases: its (k * w)-th.
        """
        reserve = self._reserve
        if reserve is not None and reserve.protects(priority):
            claims = self.claims
            return None if claims is None else claims.wait(pool.models, k, self._typical_hold)
        due: list[Iterator[float]] = []
        for deps in pool.models:
            for dep in deps:
                if reserve is None:  # then every slot is held as a protected one
                    if (held := self._releases.get((dep.id, True))) is not None:
                        due.append(held.due())
                elif (others := self._releases.get((dep.id, False))) is not None:
                    due.append(others.due(self._excess(dep, others.live)))
        if reserve is not None:
            k *= reserve.workers
        return kth_release(due, k, self._clock()) if due else None

    def _excess(self, dep: Deployment, held: int) -> int:
        """Unprotected slots of ``dep`` that must come back before one more is open."""
        if self._reserve is None:
            return 0
        gate = self._adaptive.find(dep.id)
        limit = gate.limit if gate is not None else dep.settings.max_concurrency
        if limit is None:
            return 0
        return max(0, held - self._open_to_others(self._reserve.demand(dep.id), limit, dep.id))

    def _releases_of(self, deployment: str, protected: bool) -> Releases:
        found = self._releases.get((deployment, protected))
        if found is None:
            found = self._releases[(deployment, protected)] = Releases(self._clock)
        return found

    async def take(self, dep: Deployment, tokens: int, priority: int = 0) -> Slot | Admission:
        """A slot on ``dep`` for a request of a key of ``priority`` reserving ``tokens``, or the
        refusal. Below the reserve's priority, the slots it keeps are not free."""
        demand, protected = self._demand(dep, priority)
        gate = None
        if self._adaptive_on:
            gate = self._adaptive.get(dep.id, dep.settings.max_concurrency)
            if not gate.try_acquire():
                hint = gate.long_latency or self._poll
                return Admission(False, hint, f"d:{dep.id}:adaptive", queueable=True)
        cap = dep.settings.max_concurrency
        if demand is not None and not protected and self._open_full(demand, gate, cap, dep.id):
            if gate is not None:
                gate.release()
            hint = (gate.long_latency if gate is not None else None) or self._poll
            return Admission(False, hint, f"d:{dep.id}:reserved", queueable=True)
        asks = self._asks(dep, tokens, demand, protected)
        admission = await self._limiter.acquire(asks) if asks else ADMITTED
        if not admission.admitted:
            if gate is not None:
                gate.release()
            return admission
        rates = tuple(a for a in asks if a.kind is BucketKind.RATE)
        if demand is not None:
            demand.start(protected)
        releases = self._releases_of(dep.id, protected)
        hold = (releases, releases.start())
        return Slot(self, dep.id, admission.lease, gate, rates, demand, protected, hold)

    def has_room(self, pool: Pool, priority: int) -> bool:
        """Whether ``take`` would find a slot now on some deployment of ``pool`` for a request
        of ``priority`` reserving no tokens, taking nothing. Only the in-process limiter can say
        so for free: with a shared one, assume room."""
        local = self._local
        if local is None:
            return True
        reserve = self._reserve
        protected = reserve is None or priority >= reserve.min_priority  # reserve.protects
        for deps in pool.models:
            for dep in deps:
                if self._room_on(dep, protected, local):
                    return True
        return False

    def _room_on(self, dep: Deployment, protected: bool, local: MemoryLimiter) -> bool:
        # As in ``take``: the deployment's demand is looked up (made on first use) either way.
        demand = self._reserve.demand(dep.id) if self._reserve is not None else None
        gate = None
        if self._adaptive_on:
            gate = self._adaptive.get(dep.id, dep.settings.max_concurrency)
            if gate.full:
                return False
        if demand is not None and not protected:
            if self._open_full(demand, gate, dep.settings.max_concurrency, dep.id):
                return False
            asks = self._asks(dep, 0, demand, protected)
        else:
            asks = self._no_tokens(dep)
        return local.would_refuse(asks) is None

    def _no_tokens(self, dep: Deployment) -> list[BucketAsk]:
        known = self._no_token_asks.get(dep.id)
        if known is None:
            known = self._no_token_asks[dep.id] = self._asks(dep, 0, None, True)
        return known

    def _demand(self, dep: Deployment, priority: int) -> tuple[ProtectedDemand | None, bool]:
        """``dep``'s protected demand (reserve on) and whether ``priority`` is protected."""
        if self._reserve is None:
            return None, True
        return self._reserve.demand(dep.id), self._reserve.protects(priority)

    def _asks(
        self, dep: Deployment, tokens: int, demand: ProtectedDemand | None, protected: bool
    ) -> list[BucketAsk]:
        unprotected = demand is not None and not protected
        behind_claims = unprotected and self.claims is not None
        asks = deployment_asks(dep.id, dep.settings, tokens, behind_claims)
        cap = dep.settings.max_concurrency
        if demand is not None and not protected and cap is not None and self._reserve is not None:
            # Unprotected requests also count against the cap minus the reserve, in the shared
            # limiter, so the reserve holds across processes; each process sizes it from its own
            # estimate, so the smallest size asked lately binds them all.
            hold = self._typical_hold(dep.id)
            open_cap = cap - self._reserve.kept(demand, cap, hold)
            binds = self._reserve.binding_seconds(hold)
            name = f"d:{dep.id}:conc:open"
            asks.append(BucketAsk.concurrency(name, open_cap, True, keep_lowest=binds))
        return asks

    def arrive(self, pool: Pool, priority: int) -> None:
        """A request of ``priority`` came for ``pool``: it counts towards the arrival rates
        that size the reserve of each deployment of the first model (a share each, as it takes
        one of them)."""
        reserve = self._reserve
        if reserve is None or not pool.models:
            return
        protected = priority >= reserve.min_priority  # reserve.protects(priority)
        deps = pool.models[0]
        weight = 1.0 / len(deps)
        for dep in deps:
            reserve.demand(dep.id).arrive(protected, weight)

    def _typical_hold(self, deployment: str) -> float | None:
        for protected in (True, False):
            releases = self._releases.get((deployment, protected))
            if releases is not None and releases.typical is not None:
                return releases.typical
        return None

    def _open_full(
        self, demand: ProtectedDemand, gate: GradientLimit | None, cap: int | None, deployment: str
    ) -> bool:
        """Whether this process's unprotected requests already fill what is open to them
        (under the adaptive limit if there is one, else the cap)."""
        limit = gate.limit if gate is not None else cap
        return limit is not None and demand.others >= self._open_to_others(
            demand, limit, deployment
        )

    def _open_to_others(self, demand: ProtectedDemand, limit: int, deployment: str) -> int:
        """How many unprotected requests this process may have in flight on the deployment."""
        if self._reserve is None:
            return limit
        return self._reserve.open_to_others(demand, limit, self._typical_hold(deployment))

    def give_back(self, lease: Lease | None, settles: Sequence[BucketSettle]) -> None:
        """Release ``lease`` and apply ``settles`` off the hot path, then wake the queues."""
        if lease is None and not settles:
            self._notify()
        elif self._local is not None:
            self._local.release_now(lease, settles)
            self._notify()
        else:
            self._releaser.submit(lease, settles, self._notify)


class DeploymentSlots:
    """One request's deployment caps (``relaygate.core.capacity.Capacity``)."""

    __slots__ = ("_pool", "_priority", "_reserved", "_source", "_taken", "_tokens")

    def __init__(
        self,
        source: SlotSource,
        pool: Pool,
        tokens: int,
        reserved: Slot | None,
        priority: int = 0,
    ) -> None:
        self._source = source
        self._pool = pool
        self._tokens = tokens
        self._reserved = reserved
        self._priority = priority
        self._taken: list[Slot] = []

    @property
    def reserved(self) -> str | None:
        return self._reserved.deployment if self._reserved is not None else None

    @property
    def reserved_slot(self) -> Slot | None:
        return self._reserved

    def governs(self, dep: Deployment) -> bool:
        return dep.id in self._pool.governed

    async def take(self, dep: Deployment) -> Slot | float:
        held = self._reserved
        if held is not None and held.deployment == dep.id:
            self._reserved = None
            self._taken.append(held)
            return held
        got = await self._source.take(dep, self._tokens, self._priority)
        if isinstance(got, Admission):
            return got.retry_after if got.retry_after > 0 else CONCURRENCY_RETRY_SECONDS
        self._taken.append(got)
        return got

    def done(self) -> None:
        held, self._reserved = self._reserved, None
        if held is not None:
            held.release(None, used=False)

    def close(self, usage: Usage | None) -> None:
        """The request is over: free whatever is still held (a stream never pumped, say).

        A reservation still held counts as used when the request has usage to settle with.
        """
        held, self._reserved = self._reserved, None
        if held is not None:
            held.release(usage, used=usage is not None)
        for slot in self._taken:
            slot.release(usage)
        self._taken.clear()
