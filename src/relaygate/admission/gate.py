"""The Admitter: a request's limits, queue, adaptive slots and degradation, in one place.

``admit`` runs after the model is resolved and before anything is relayed: it returns a
``Ticket`` (possibly for a cheaper fallback model) or raises ``RateLimitedError`` with a
``retry_after``. ``finish`` runs in the handler's ``finally``, never awaits and never raises: it
frees what the request still holds, feeds latencies to the controllers and hands the lease and TPM
true-up to the background releaser. A request with no limits anywhere costs a few attribute checks.

Deployment caps are not settled here once and for all: admission only reserves a slot on the first
deployment of the model chain with room (waiting in the queue while there is none), and the ticket's
``capacity`` lets the attempt loop take each deployment's caps per attempt (``slots``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from relaygate.admission.budget import wait_budget
from relaygate.admission.degrade import DegradeLevels
from relaygate.admission.feedback import learn
from relaygate.admission.messages import QUEUE_RESULTS, busy_message, refusal
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.admission.overload import LagMonitor
from relaygate.admission.queue import AdmissionQueue, Depth, Forecast, QueueRefusedError
from relaygate.capacity.adaptive import AdaptiveLimits
from relaygate.capacity.claims import CLAIM_POLL_SECONDS
from relaygate.capacity.pools import Pool, pool_of
from relaygate.capacity.reserve import PriorityReserve
from relaygate.capacity.slots import DeploymentSlots, Slot, SlotSource
from relaygate.core.context import RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.core.estimate import estimate_input_tokens
from relaygate.core.types import ChatRequest
from relaygate.limits.asks import KnownKeyBuckets, global_ask, token_reservation, tpm_true_ups
from relaygate.limits.limiter import (
    ADMITTED,
    CONCURRENCY_RETRY_SECONDS,
    Admission,
    BucketAsk,
    RateLimiter,
)
from relaygate.limits.memory import MemoryLimiter
from relaygate.limits.releaser import Releaser
from relaygate.routing.catalog import ModelRoute
from relaygate.settings.limits import LimitSettings
from relaygate.store.records import KeyRecord

RouteLookup = Callable[[str], ModelRoute | None]
# How a refusal at once by the queue (its only kind: the expected wait is too long) is counted.
_EXPECTED_WAIT = QUEUE_RESULTS["expected_wait"]


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until ``finish``; ``route`` is the one to relay to.

    ``capacity`` (for ``RequestContext.capacity``) takes the deployments' caps per attempt; it is
    None when no deployment of the route's chain has any.
    """

    route: ModelRoute
    admission: Admission | None = None
    capacity: DeploymentSlots | None = None
    tpm: tuple[BucketAsk, ...] = ()
    queued_seconds: float = 0.0
    serve_stale: bool = False
    finished: bool = field(default=False)


@dataclass(slots=True, frozen=True)
class _Busy:
    """What ``refuse_busy`` asks of a model besides the request, looked up once per model: its
    pool, its queue and its typical upstream latency (asked only for a client timeout)."""

    pool: Pool
    queue: AdmissionQueue
    latency: Callable[[], float]


@dataclass(slots=True)
class _Plan:
    key: KeyRecord
    pool: Pool | None
    key_asks: tuple[BucketAsk, ...]
    key_tpm: BucketAsk | None
    tokens: int


class Admitter:
    """Admission for every chat request of one process."""

    def __init__(
        self,
        settings: LimitSettings,
        limiter: RateLimiter,
        *,
        lookup: RouteLookup,
        metrics: AdmissionMetrics | None = None,
        workers: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._local = limiter if isinstance(limiter, MemoryLimiter) else None
        self._lookup = lookup
        self._metrics = metrics
        self._clock = clock
        adaptive = settings.adaptive
        self.overload = LagMonitor(
            settings.overload,
            on_shed=metrics.shed if metrics else None,
            watch_lag_ms=adaptive.freeze_on_loop_lag_ms if adaptive.enabled else None,
        )
        self.adaptive = AdaptiveLimits(
            settings.adaptive,
            clock,
            metrics.adaptive_limit if metrics else None,
            self._loop_lag if settings.overload.enabled else None,
        )
        if metrics is not None:
            metrics.watch_loop_lag(self._loop_lag)
        self.degrade = DegradeLevels(
            settings.degrade, clock, metrics.level_changed if metrics else None
        )
        self._global = global_ask(settings.global_max_concurrency)
        self._depth = Depth(settings.queue.max_depth)
        self._queues: dict[str, AdmissionQueue] = {}
        self._releaser = Releaser(limiter)
        self._slots = SlotSource(
            limiter,
            self.adaptive,
            self._releaser,
            self._notify_all,
            settings.queue.poll_seconds,
            PriorityReserve(settings.priority_reserve, workers, clock),
            clock,
        )
        self._pools: dict[str, Pool | None] = {}
        self._busy: dict[str, _Busy | None] = {}  # per model: None where refuse_busy never can
        self._key_buckets = KnownKeyBuckets()
        self._reserve_on = settings.priority_reserve.enabled
        self._protected_from = settings.priority_reserve.min_priority
        # The settings are frozen: read once, not per request (a settings attribute is dearer).
        self._degrade_on = settings.degrade.enabled
        self._queue_wait = settings.queue.max_wait_seconds
        protected_wait = settings.priority_reserve.max_wait_seconds
        self._protected_wait = self._queue_wait if protected_wait is None else protected_wait
        self._turn = 0

    @property
    def limiter(self) -> RateLimiter:
        return self._limiter

    @property
    def queued(self) -> int:
        """Requests waiting in the admission queues now."""
        return self._depth.count

    def start(self) -> None:
        """Start the background releaser and the loop-lag monitor (inside the running loop)."""
        self._releaser.start()
        self.overload.start()

    async def close(self) -> None:
        """Stop the lag monitor, send every pending release, then close the limiter."""
        await self.overload.stop()
        await self._releaser.close()
        await self._limiter.close()

    def refuse_spent_key(self, key: KeyRecord) -> None:
        """Raise now the 429 ``admit`` would answer ``key`` for its own quota, before the body
        is read: when even a request of zero tokens would not fit the key's buckets. Only with
        limits counted in this process (a shared store's round trip costs more than it saves)."""
        if self._local is not None:
            _, buckets, limited = self._key_buckets.of(key)
            if limited:
                refused = self._local.would_refuse(buckets.zero_tokens)
                if refused is not None:
                    raise self._refusal(refused, key.priority)

    def refuse_busy(
        self, key: KeyRecord, route: ModelRoute, headers: Mapping[str, str], spent: float = 0.0
    ) -> None:
        """Raise now the busy 429 ``admit`` would answer, before the body is decoded: when the
        request may not wait (its wait budget, counted from its arrival ``spent`` seconds ago
        for a lower key, is spent or shorter than the queue's expected wait) and others wait
        ahead of it or no deployment of its model has room.

        Only where that answer needs nothing from the decoded request: limits counted in this
        process, no degradation actions on the model (they may switch it or serve stale answers)
        and no deployment TPM cap (its ask needs the token estimate)."""
        if self._local is None:
            return
        if self._degrade_on and self.degrade.get(route.name).actions() is not None:
            return
        try:
            busy = self._busy[route.name]
        except KeyError:
            busy = self._busy[route.name] = self._busy_of(route)
        if busy is None:
            return
        priority = key.priority
        # Judged as after a try that found no room: with room and nobody waiting, admit takes it.
        protected = self._reserve_on and priority >= self._protected_from  # first served
        budget = self._budget(headers, busy.latency, protected, spent)
        queue = busy.queue
        retry_after = queue.refused_after(priority, budget, True, protected)
        if retry_after is None:
            return
        if not queue.waiting and self._slots.has_room(busy.pool, priority):
            return
        self._slots.arrive(busy.pool, priority)  # as admit would have counted it
        if self._metrics is not None:  # self._count(_EXPECTED_WAIT, priority), inlined
            self._metrics.decision(_EXPECTED_WAIT, priority >= self._protected_from)
        raise RateLimitedError(busy_message(retry_after), retry_after=retry_after)

    async def admit(
        self,
        key: KeyRecord,
        route: ModelRoute,
        req: ChatRequest,
        headers: Mapping[str, str],
        spent: float = 0.0,
    ) -> Ticket:
        """Admit the request or raise ``RateLimitedError`` (429 with Retry-After).

        ``spent`` is the seconds since the request arrived (the handler's start): a lower key's
        wait budget counts from then, so that the queue's ``max_wait_seconds`` bounds the time
        from arrival to admission or refusal, not from the moment it happens to reach the queue
        (under a surge, reading, parsing and the first try may take milliseconds of the loop's
        backlog). A protected key's counts from the queue (``_budget``).
        """
        serve_stale = False
        if self.degrade.enabled:
            route, serve_stale = self._apply_level(key, route)
        pool = self._pool_of(route)
        if pool is None and not self._global and not self._key_buckets.of(key)[2]:
            return Ticket(route, serve_stale=serve_stale)
        plan = self._plan(key, req, pool)
        if pool is not None:
            self._slots.arrive(pool, key.priority)
        queue = self._queue(route.name, pool)
        started = self._clock()
        arrived = started - spent
        if queue.waiting:
            admission, reserved = await self._wait(plan, queue, headers, arrived, tried=False)
        else:
            admission, reserved = await self._try(plan)
            if not admission.admitted and admission.queueable:
                admission, reserved = await self._wait(plan, queue, headers, arrived, tried=True)
        if not admission.admitted:
            raise self._refusal(admission, key.priority)
        waited = self._clock() - started
        queue.record_admission()
        self._count("queued" if waited > 0.0005 else "admitted")
        if self._metrics is not None and waited > 0.0005:
            self._metrics.queue_wait.observe(waited)
        tpm = (plan.key_tpm,) if plan.key_tpm is not None else ()
        slots = None
        if pool is not None:
            slots = DeploymentSlots(self._slots, pool, plan.tokens, reserved, key.priority)
        return Ticket(route, admission, slots, tpm, waited, serve_stale)

    def finish(self, ticket: Ticket, ctx: RequestContext) -> None:
        """Release what the ticket holds and learn from the attempts; never raises."""
        if ticket.finished:
            return
        ticket.finished = True
        if self.adaptive.enabled or self.degrade.enabled:
            learn(ticket.route, ctx, self.adaptive, self.degrade)
        if ticket.capacity is not None:
            ticket.capacity.close(ctx.usage)
        admission = ticket.admission
        lease = admission.lease if admission is not None else None
        settles = tpm_true_ups(ticket.tpm, ctx.usage)
        if lease is None and not settles:
            return
        queue = self._queues.get(ticket.route.name)
        notify = queue.notify if queue is not None else None
        if self._local is not None:
            self._local.release_now(lease, settles)
            if notify is not None:
                notify()
            return
        self._releaser.submit(lease, settles, notify)

    def _apply_level(self, key: KeyRecord, route: ModelRoute) -> tuple[ModelRoute, bool]:
        actions = self.degrade.get(route.name).actions()
        if actions is None:
            return route, False
        shed = actions.shed_below_priority
        if shed is not None and key.priority < shed:
            self._count("shed", key.priority)
            if self._metrics is not None:
                self._metrics.shed("degraded")
            hold = max(1.0, self._settings.degrade.min_hold_seconds)
            raise RateLimitedError(busy_message(hold), retry_after=hold)
        target = actions.fallback_models.get(route.name)
        if target and (not key.allowed_models or target in key.allowed_models):
            route = self._lookup(target) or route
        return route, actions.serve_stale

    def _busy_of(self, route: ModelRoute) -> _Busy | None:
        """What ``refuse_busy`` needs of ``route``'s model; None when its answer needs the
        decoded request (no governed deployment, a TPM cap, or one model without caps)."""
        pool = self._pool_of(route)
        if pool is None or pool.counts_tokens or pool.open_ended:
            return None
        return _Busy(pool, self._queue(route.name, pool), self._latency_of(pool))

    def _pool_of(self, route: ModelRoute) -> Pool | None:
        """The governed deployments of the route's chain: None when none has any cap."""
        try:
            return self._pools[route.name]
        except KeyError:
            found = self._pools[route.name] = pool_of(route, self._lookup, self.adaptive.enabled)
            return found

    def _plan(self, key: KeyRecord, req: ChatRequest, pool: Pool | None) -> _Plan:
        tokens = 0
        if key.tpm is not None or (pool is not None and pool.counts_tokens):
            estimate = estimate_input_tokens(req)
            tokens = token_reservation(
                estimate, req.max_tokens, self._settings.output_token_reserve
            )
        limits = self._key_buckets.of(key)[1].asks(tokens)
        return _Plan(key, pool, limits.asks, limits.tpm, tokens)

    def _queue(self, name: str, pool: Pool | None) -> AdmissionQueue:
        queue = self._queues.get(name)
        if queue is None:
            queue = AdmissionQueue(
                self._depth,
                poll_seconds=self._settings.queue.poll_seconds,
                clock=self._clock,
                forecast=self._forecast_of(pool),
                reach=self._slots.claims.reach if self._slots.claims is not None else None,
                lateness=self._loop_lag if self._settings.overload.enabled else None,
            )
            self._queues[name] = queue
        return queue

    def _forecast_of(self, pool: Pool | None) -> Forecast | None:
        """When the pool's k-th held slot is expected back (the queue's wait forecast)."""
        if pool is None:
            return None
        slots = self._slots
        return lambda k, priority: slots.forecast(pool, k, priority)

    async def _try(self, plan: _Plan) -> tuple[Admission, Slot | None]:
        """A slot on the chain's first deployment with room (if it needs one), then the key's
        quota and the global cap; a refusal there gives the slot back."""
        reserved = None
        if plan.pool is not None:
            found = await self._reserve(plan.pool, plan.tokens, plan.key.priority)
            if isinstance(found, Admission):
                return found, None
            reserved = found
        asks = plan.key_asks + self._global
        try:
            admission = await self._limiter.acquire(asks) if asks else ADMITTED
        except BaseException:
            if reserved is not None:
                reserved.release(None, used=False)
            raise
        if not admission.admitted and reserved is not None:
            reserved.release(None, used=False)
            reserved = None
        return admission, reserved

    async def _reserve(self, pool: Pool, tokens: int, priority: int) -> Slot | Admission | None:
        """Model by model in chain order, round robin within one: the first deployment with room.
        None when a model without caps is reached (it needs no slot)."""
        turn = self._turn
        self._turn += 1
        refusal: Admission | None = None
        for deps in pool.models:
            count = len(deps)
            for offset in range(count):
                got = await self._slots.take(deps[(turn + offset) % count], tokens, priority)
                if isinstance(got, Slot):
                    return got
                if not got.queueable:
                    return got
                if refusal is None or got.retry_after < refusal.retry_after:
                    refusal = got
        if pool.open_ended:
            return None
        return refusal or Admission(False, CONCURRENCY_RETRY_SECONDS, "d:none", queueable=True)

    async def _wait(
        self,
        plan: _Plan,
        queue: AdmissionQueue,
        headers: Mapping[str, str],
        arrived: float,
        tried: bool,
    ) -> tuple[Admission, Slot | None]:
        outcome: list[Slot | None] = [None]
        priority = plan.key.priority
        protected = self._protects(priority)
        latency = self._latency_of(plan.pool)
        budget = self._budget(headers, latency, protected, self._clock() - arrived)
        hand_off, claims = self._slots.claims, None
        if (
            hand_off is not None
            and plan.pool is not None
            and protected
            and budget > 0
            and queue.refused_after(priority, budget, tried, first_served=True) is None
        ):
            # A protected request about to wait claims the next slot freed in any process.
            claims = await hand_off.claim(plan.pool.models, priority)
        # A protected waiter is handed each slot freed ahead of lower keys, by its claims across
        # processes or by the queue's order within one: it waits until its budget is spent.
        first_served = claims is not None or (protected and self._local is not None)

        async def attempt() -> Admission:
            admission, reserved = await self._try(plan)
            outcome[0] = reserved
            if claims is not None and not admission.admitted and admission.queueable:
                # The slot claimed may be freed in another process: ask again soon.
                retry = min(admission.retry_after, CLAIM_POLL_SECONDS)
                return replace(admission, retry_after=retry)
            return admission

        self._gauge_depth()
        try:
            admission = await queue.wait(priority, budget, attempt, tried, first_served)
        except QueueRefusedError as refused:
            raise self._queue_refusal(refused, priority) from None
        finally:
            if hand_off is not None and claims is not None:
                hand_off.unclaim(claims)
            self._gauge_depth()
        return admission, outcome[0]

    def _queue_refusal(self, refused: QueueRefusedError, priority: int) -> RateLimitedError:
        self._count(QUEUE_RESULTS.get(refused.reason, "busy"), priority)
        return RateLimitedError(busy_message(refused.retry_after), retry_after=refused.retry_after)

    def _budget(
        self,
        headers: Mapping[str, str],
        latency: Callable[[], float],
        protected: bool,
        spent: float,
    ) -> float:
        """Seconds a request may still wait, ``spent`` seconds after it arrived: the queue's
        cap counted from its arrival, so that a refusal comes within it however long reading,
        parsing and the loop's backlog took; for a ``protected`` one, the reserve's own cap
        when set (else the queue's), counted from now: its budget is for its success (it is
        handed each slot freed ahead of lower keys), and time lost before the queue would only
        cost it slots. ``latency``: the pool's typical latency (``_latency_of``)."""
        if protected:
            return wait_budget(self._protected_wait, headers, latency)  # never below 0
        budget = wait_budget(self._queue_wait, headers, latency) - spent
        return budget if budget > 0.0 else 0.0

    def _latency_of(self, pool: Pool | None) -> Callable[[], float]:
        """The typical latency of ``pool`` (for a client timeout's wait budget), when asked."""
        return lambda: self._typical_latency(pool)

    def _typical_latency(self, pool: Pool | None) -> float:
        if not self.adaptive.enabled or pool is None:
            return 0.0
        known = [
            gate.long_latency or 0.0
            for name in pool.governed
            if (gate := self.adaptive.find(name)) is not None
        ]
        return min(known, default=0.0)

    def _refusal(self, admission: Admission, priority: int) -> RateLimitedError:
        result, error = refusal(admission)
        self._count(result, priority)
        return error

    def _notify_all(self) -> None:
        """A deployment slot was freed: every queue whose head may use it tries again."""
        for queue in self._queues.values():
            if queue.waiting:
                queue.notify()

    def _loop_lag(self) -> float:
        return self.overload.lag

    def _protects(self, priority: int) -> bool:
        """Whether the priority reserve protects keys of ``priority``."""
        return self._reserve_on and priority >= self._protected_from

    def _count(self, result: str, priority: int | None = None) -> None:
        """Count a decision; a refusal's ``priority`` says whether the reserve protects it."""
        if self._metrics is not None:
            protected = priority is not None and priority >= self._protected_from
            self._metrics.decision(result, protected)

    def _gauge_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(self._depth.count)
