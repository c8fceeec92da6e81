"""The Admitter: a request's limits, queue, adaptive slots and degradation, in one place.

``admit`` runs after the model is resolved and before anything is relayed: it returns a
``Ticket`` (possibly for a cheaper fallback model) or raises ``RateLimitedError`` with a
``retry_after``. ``finish`` runs in the handler's ``finally``, never awaits and never raises: it
frees the adaptive slot, feeds latencies to the controllers and hands the lease and TPM true-up to
the background releaser. A request with no limits anywhere costs a few attribute checks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from relaygate.admission.adaptive import AdaptiveLimits, GradientLimit
from relaygate.admission.degrade import DegradeLevels
from relaygate.admission.limiter import (
    ADMITTED,
    Admission,
    BucketAsk,
    BucketSettle,
    RateLimiter,
)
from relaygate.admission.memory import MemoryLimiter
from relaygate.admission.messages import (
    KEY_LIMIT_MESSAGES,
    QUEUE_RESULTS,
    busy_message,
    header_number,
    whole_seconds,
)
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.admission.overload import LagMonitor
from relaygate.admission.plan import (
    deployment_asks,
    deployment_is_capped,
    global_ask,
    key_asks,
    key_is_limited,
    token_reservation,
)
from relaygate.admission.queue import AdmissionQueue, Depth, QueueRefusedError
from relaygate.admission.releaser import Releaser
from relaygate.admission.resilient import SHARED_DOWN
from relaygate.core.errors import RateLimitedError
from relaygate.core.estimate import estimate_input_tokens
from relaygate.core.types import ChatRequest
from relaygate.relay.catalog import Deployment, ModelRoute
from relaygate.relay.context import RequestContext
from relaygate.settings.limits import LimitSettings
from relaygate.store.records import KeyRecord

MAX_WAIT_HEADER = "x-relaygate-max-wait-ms"
CLIENT_TIMEOUT_HEADER = "x-stainless-timeout"  # sent by the official OpenAI/Anthropic SDKs
OVERLOAD_STATUSES = frozenset({429, 503, 529})
OVERLOAD_OUTCOMES = frozenset({"timeout", "overloaded", "rate_limited"})
RouteLookup = Callable[[str], ModelRoute | None]


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until ``finish``; ``route`` is the one to relay to."""

    route: ModelRoute
    admission: Admission | None = None
    gate: GradientLimit | None = None
    tpm: tuple[BucketAsk, ...] = ()
    queued_seconds: float = 0.0
    serve_stale: bool = False
    finished: bool = field(default=False)


@dataclass(slots=True)
class _Plan:
    key: KeyRecord
    candidates: tuple[Deployment, ...]
    key_asks: tuple[BucketAsk, ...]
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
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._local = limiter if isinstance(limiter, MemoryLimiter) else None
        self._lookup = lookup
        self._metrics = metrics
        self._clock = clock
        self.overload = LagMonitor(settings.overload, on_shed=metrics.shed if metrics else None)
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
        self._candidates: dict[str, tuple[Deployment, ...]] = {}
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

    async def admit(
        self, key: KeyRecord, route: ModelRoute, req: ChatRequest, headers: Mapping[str, str]
    ) -> Ticket:
        """Admit the request or raise ``RateLimitedError`` (429 with Retry-After)."""
        serve_stale = False
        if self.degrade.enabled:
            route, serve_stale = self._apply_level(key, route)
        candidates = self._candidates_of(route)
        if not candidates and not self._global and not key_is_limited(key):
            return Ticket(route, serve_stale=serve_stale)
        plan = self._plan(key, req, candidates)
        queue = self._queue(route.name)
        started = self._clock()
        if len(queue):
            admission, chosen, gate = await self._wait(plan, queue, headers)
        else:
            admission, chosen, gate = await self._try(plan)
            if not admission.admitted and admission.queueable:
                admission, chosen, gate = await self._wait(plan, queue, headers)
        if not admission.admitted:
            raise self._refusal(admission)
        waited = self._clock() - started
        queue.record_admission()
        self._count("queued" if waited > 0.0005 else "admitted")
        if self._metrics is not None and waited > 0.0005:
            self._metrics.queue_wait.observe(waited)
        tpm = tuple(a for a in self._asks(plan, chosen) if a.name.endswith(":tpm"))
        return Ticket(self._narrow(route, chosen), admission, gate, tpm, waited, serve_stale)

    def finish(self, ticket: Ticket, ctx: RequestContext) -> None:
        """Release what the ticket holds and learn from the attempts; never raises."""
        if ticket.finished:
            return
        ticket.finished = True
        if self.adaptive.enabled or self.degrade.enabled:
            self._learn(ticket.route, ctx)
        if ticket.gate is not None:
            ticket.gate.release()
        admission = ticket.admission
        lease = admission.lease if admission is not None else None
        settles = _true_ups(ticket.tpm, ctx)
        queue = self._queues.get(ticket.route.name)
        notify = queue.notify if queue is not None else None
        if lease is None and not settles:
            if notify is not None and ticket.gate is not None:
                notify()
            return
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
            self._count("shed")
            if self._metrics is not None:
                self._metrics.shed("degraded")
            hold = max(1.0, self._settings.degrade.min_hold_seconds)
            raise RateLimitedError(busy_message(hold), retry_after=hold)
        target = actions.fallback_models.get(route.name)
        if target and (not key.allowed_models or target in key.allowed_models):
            route = self._lookup(target) or route
        return route, actions.serve_stale

    def _candidates_of(self, route: ModelRoute) -> tuple[Deployment, ...]:
        """The deployments admission chooses among: none when no deployment has any cap."""
        found = self._candidates.get(route.name)
        if found is None:
            adaptive = self.adaptive.enabled
            capped = any(deployment_is_capped(d.settings) for d in route.deployments)
            found = route.deployments if adaptive or capped else ()
            self._candidates[route.name] = found
        return found

    def _plan(self, key: KeyRecord, req: ChatRequest, candidates: tuple[Deployment, ...]) -> _Plan:
        tokens = 0
        if key.tpm is not None or any(d.settings.tpm is not None for d in candidates):
            estimate = estimate_input_tokens(req)
            tokens = token_reservation(
                estimate, req.max_tokens, self._settings.output_token_reserve
            )
        return _Plan(key, candidates, key_asks(key, tokens).asks, tokens)

    def _asks(self, plan: _Plan, dep: Deployment | None) -> tuple[BucketAsk, ...]:
        asks = plan.key_asks + self._global
        if dep is None:
            return asks
        return asks + tuple(deployment_asks(dep.id, dep.settings, plan.tokens))

    def _queue(self, name: str) -> AdmissionQueue:
        queue = self._queues.get(name)
        if queue is None:
            queue = AdmissionQueue(
                self._depth, poll_seconds=self._settings.queue.poll_seconds, clock=self._clock
            )
            self._queues[name] = queue
        return queue

    async def _try(self, plan: _Plan) -> tuple[Admission, Deployment | None, GradientLimit | None]:
        """One pass over the candidates: the first that admits wins."""
        if not plan.candidates:
            return await self._limiter.acquire(self._asks(plan, None)), None, None
        count = len(plan.candidates)
        start = self._turn % count
        self._turn += 1
        refusal = Admission(False)
        for offset in range(count):
            dep = plan.candidates[(start + offset) % count]
            gate = None
            if self.adaptive.enabled:
                gate = self.adaptive.get(dep.id, dep.settings.max_concurrency)
                if not gate.try_acquire():
                    hint = gate.long_latency or self._settings.queue.poll_seconds
                    refusal = Admission(False, hint, f"d:{dep.id}:adaptive", queueable=True)
                    continue
            asks = self._asks(plan, dep)
            admission = await self._limiter.acquire(asks) if asks else ADMITTED
            if admission.admitted:
                return admission, dep, gate
            if gate is not None:
                gate.release()
            if not admission.queueable:
                return admission, None, None
            refusal = admission
        return refusal, None, None

    async def _wait(
        self, plan: _Plan, queue: AdmissionQueue, headers: Mapping[str, str]
    ) -> tuple[Admission, Deployment | None, GradientLimit | None]:
        outcome: list[tuple[Deployment | None, GradientLimit | None]] = [(None, None)]

        async def attempt() -> Admission:
            admission, dep, gate = await self._try(plan)
            outcome[0] = (dep, gate)
            return admission

        budget = self._budget(headers, plan)
        self._gauge_depth()
        try:
            admission = await queue.wait(plan.key.priority, budget, attempt)
        except QueueRefusedError as refused:
            self._count(QUEUE_RESULTS.get(refused.reason, "busy"))
            raise RateLimitedError(
                busy_message(refused.retry_after), retry_after=refused.retry_after
            ) from None
        finally:
            self._gauge_depth()
        dep, gate = outcome[0]
        return admission, dep, gate

    def _budget(self, headers: Mapping[str, str], plan: _Plan) -> float:
        """Seconds this request may wait: the configured maximum, the caller's own maximum,
        and what its client timeout leaves after a typical upstream call."""
        budget = self._settings.queue.max_wait_seconds
        asked = header_number(headers.get(MAX_WAIT_HEADER))
        if asked is not None:
            budget = min(budget, asked / 1000.0)
        client_timeout = header_number(headers.get(CLIENT_TIMEOUT_HEADER))
        if client_timeout is not None:
            typical = self._typical_latency(plan)
            budget = min(budget, client_timeout - typical)
        return max(0.0, budget)

    def _typical_latency(self, plan: _Plan) -> float:
        if not self.adaptive.enabled:
            return 0.0
        known = [
            gate.long_latency or 0.0
            for dep in plan.candidates
            if (gate := self.adaptive.find(dep.id)) is not None
        ]
        return min(known, default=0.0)

    def _narrow(self, route: ModelRoute, chosen: Deployment | None) -> ModelRoute:
        """The route the relay may use: the admitted deployment first, then only the
        deployments admission does not govern."""
        if chosen is None or len(route.deployments) == 1:
            return route
        free = tuple(
            d
            for d in route.deployments
            if d is not chosen
            and not self.adaptive.enabled
            and not deployment_is_capped(d.settings)
        )
        return replace(route, deployments=(chosen, *free))

    def _refusal(self, admission: Admission) -> RateLimitedError:
        retry = admission.retry_after
        refused = admission.refused or ""
        if refused == SHARED_DOWN:
            self._count("shared_unavailable")
            message = (
                "relaygate is busy: shared rate limits are unavailable; "
                f"retry in {whole_seconds(retry)} s"
            )
            return RateLimitedError(message, retry_after=retry)
        if refused.startswith("k:"):
            self._count("key_limit")
            limit = refused.rsplit(":", 1)[-1]
            message = KEY_LIMIT_MESSAGES.get(limit, "rate limit")
            return RateLimitedError(
                f"This API key exceeded its {message}: retry in {whole_seconds(retry)} s",
                retry_after=retry,
            )
        self._count("busy")
        return RateLimitedError(busy_message(retry), retry_after=retry)

    def _learn(self, route: ModelRoute, ctx: RequestContext) -> None:
        """Feed each upstream attempt to its deployment's adaptive limit and the model's level."""
        level = self.degrade.get(route.name) if self.degrade.enabled else None
        for attempt in ctx.attempts:
            failed = attempt.outcome != "ok"
            overloaded = failed and (
                attempt.status in OVERLOAD_STATUSES or attempt.outcome in OVERLOAD_OUTCOMES
            )
            gate = self.adaptive.find(attempt.deployment) if self.adaptive.enabled else None
            if gate is not None and (overloaded or not failed):
                gate.sample(attempt.seconds, overloaded)
            if level is not None and any(d.id == attempt.deployment for d in route.deployments):
                error = overloaded or (failed and (attempt.status >= 500 or attempt.status == 0))
                level.record(attempt.seconds, error)

    def _loop_lag(self) -> float:
        return self.overload.lag

    def _count(self, result: str) -> None:
        if self._metrics is not None:
            self._metrics.decision(result)

    def _gauge_depth(self) -> None:
        if self._metrics is not None:
            self._metrics.queue_depth.set(self._depth.count)


def _true_ups(tpm: Sequence[BucketAsk], ctx: RequestContext) -> tuple[BucketSettle, ...]:
    if not tpm:
        return ()
    usage = ctx.usage
    actual = usage.prompt_total + usage.output_tokens if usage is not None else 0
    return tuple(BucketSettle.true_up(ask, actual) for ask in tpm)
