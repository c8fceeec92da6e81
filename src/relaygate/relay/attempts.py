"""The attempt loop shared by whole and streamed answers.

For each model of the plan (the requested one, then its fallback chain) the deployments are put in
the model's balancing order and tried in passes: every deployment once, then again after its own
back-off (full jitter, ``Retry-After`` honoured up to a cap), up to ``attempts_per_deployment``
passes. A deployment whose breaker is open is skipped without a call; one that says the gateway's
credentials or model name are wrong (401, 403, 404), or that timed out, is not tried again. A
caller's own mistake (400, 413) ends the loop at once. ``max_attempts`` bounds the calls of one
request, and the request's deadline bounds everything: attempts get timeouts cut to what is left
of it, no back-off sleep reaches past it, and once an attempt timed out the next one only starts
with a whole first-byte timeout left. Nothing here has sent a byte to the caller, so every retry is
safe.

Rate limits are not outages: a 429 never counts against a breaker; the deployment is held back for
its ``Retry-After`` (tried last, after that wait, or skipped when the wait is too long), and a
request that only met rate limits gets a 429 with the largest ``Retry-After``. When breakers refuse
every deployment of the model and its fallback chain, the request goes through anyway, once over
each (healthy panic).

Deployment caps (rpm, tpm, max_concurrency, the adaptive limit) are taken per attempt through the
request's ``ctx.capacity``: a deployment at its cap is skipped like an open breaker, and its slot
is held until the attempt ends (a stream: until the stream ends, with the attempt's lease). When
every deployment of every model is at capacity, the caller is told the gateway is busy (429).
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from relaygate.core.capacity import Capacity, Slot
from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.core.errors import UpstreamError
from relaygate.relay.walk import GatewayTimeoutError as GatewayTimeoutError
from relaygate.relay.walk import Walk, is_rate_limit, timed_out
from relaygate.routing.balance import order
from relaygate.routing.breaker import Clock
from relaygate.routing.catalog import Catalog, Deployment, ModelRoute
from relaygate.routing.deadline import Deadline
from relaygate.routing.health import HealthBoard, Lease, PanicHook, StateHook
from relaygate.routing.planner import model_chain
from relaygate.routing.retry import MIN_ATTEMPT_SECONDS
from relaygate.transport.base import Timeouts

T = TypeVar("T")
R = TypeVar("R")
Attempt = Callable[[Deployment, Timeouts], Awaitable[T]]
Sleep = Callable[[float], Awaitable[None]]

CALLER_FAULTS = frozenset({"invalid_request", "payload_too_large"})
"""Error kinds that are the caller's doing: never retried, never held against a deployment."""
WRONG_DEPLOYMENT = frozenset({401, 403, 404})
"""Upstream statuses that mean this deployment is misconfigured: try the next one, not this."""


@dataclass(slots=True)
class Held(Generic[T]):
    """A successful attempt whose deployment stays busy until ``lease`` is closed (a stream)."""

    value: T
    lease: Lease


class AttemptRunner:
    """Runs attempts for requests under each model's routing policy and the deployments' health."""

    def __init__(
        self,
        lookup: Callable[[str], ModelRoute | None],
        board: HealthBoard,
        rng: random.Random | None = None,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._lookup = lookup
        self.board = board
        self._rng = rng or random.Random()
        self._clock = clock
        self._sleep = sleep

    def run(
        self, ctx: RequestContext, route: ModelRoute, attempt: Attempt[T]
    ) -> Coroutine[Any, Any, T]:
        """Run ``attempt`` against deployments until one succeeds; raise the most telling error.

        The loop's own coroutine, not one awaiting it: each coroutine between a request's task
        and the upstream's socket is resumed again at every wait of the exchange."""
        return self._run(ctx, route, attempt, False, _held_value)

    def run_held(
        self, ctx: RequestContext, route: ModelRoute, attempt: Attempt[T]
    ) -> Coroutine[Any, Any, Held[T]]:
        """Like ``run``, but the deployment counts as busy until the returned lease is closed."""
        return self._run(ctx, route, attempt, True, _as_held)

    async def _run(
        self,
        ctx: RequestContext,
        route: ModelRoute,
        attempt: Attempt[T],
        hold: bool,
        answer: Callable[[Held[T]], R],
    ) -> R:
        policy = route.policy
        walk = Walk(
            ctx, Deadline(self._clock(), policy.deadline_seconds), policy.retry.max_attempts
        )
        skipped: list[str] = []
        try:
            for panic in (False, True):
                walk.panic = panic
                skipped = []
                for model in model_chain(route, self._lookup):
                    held = await self._model(walk, model, attempt, hold, skipped)
                    if held is not None:
                        return answer(held)
                    if walk.stopped or len(ctx.attempts) >= walk.max_attempts:
                        break
                if panic or not walk.blackholed(skipped):
                    break
                self.board.panicked(route.name)
        finally:
            if ctx.capacity is not None:
                ctx.capacity.done()
        raise walk.exhausted(skipped)

    async def _model(
        self,
        walk: Walk,
        model: ModelRoute,
        attempt: Attempt[T],
        hold: bool,
        skipped: list[str],
    ) -> Held[T] | None:
        """Passes over one model's deployments; ``None`` when none of them answered."""
        board, retry = self.board, model.policy.retry
        now = self._clock()
        pending = order(model.policy.strategy, model.deployments, board.get, self._rng, now)
        ready_at = self._held_back(walk, pending, retry.max_retry_after, skipped, now)
        capacity = walk.ctx.capacity
        if capacity is not None and capacity.reserved is not None:
            _to_front(pending, capacity.reserved)
        # In panic every deployment is known bad: one pass, no retries to pile onto them.
        passes = 1 if walk.panic else retry.attempts_per_deployment
        for try_number in range(1, passes + 1):
            for dep in tuple(pending):
                if not await self._wait_turn(walk, dep, ready_at.get(dep.id)):
                    return None
                lease = board.admit(dep.id, dep.settings.breaker, panic=walk.panic)
                if lease is None:
                    pending.remove(dep)
                    self._skip(walk, dep, skipped)
                    continue
                if (
                    capacity is not None
                    and capacity.governs(dep)
                    and not await _take_slot(capacity, walk, dep, lease)
                ):
                    pending.remove(dep)
                    skipped.append(f"{dep.id}: at capacity")
                    continue
                try:
                    return Held(await self._one(walk, dep, lease, attempt, hold), lease)
                except UpstreamError as err:
                    if err.kind in CALLER_FAULTS:
                        raise
                    delay = None
                    if (
                        err.retryable
                        and err.upstream_status not in WRONG_DEPLOYMENT
                        and not timed_out(err)  # a hung deployment would only hang again
                    ):
                        left = walk.deadline.remaining(self._clock())
                        delay = retry.delay_within(try_number, err.retry_after, left, self._rng)
                    if delay is None:
                        pending.remove(dep)
                    else:
                        ready_at[dep.id] = self._clock() + delay
        return None

    def _held_back(
        self,
        walk: Walk,
        pending: list[Deployment],
        max_wait: float,
        skipped: list[str],
        now: float,
    ) -> dict[str, float]:
        """When each deployment an upstream's ``Retry-After`` still holds back may be tried.

        Those go to the end of ``pending``; one held longer than ``max_wait`` or past the deadline
        is dropped from this request as rate limited.
        """
        ready_at: dict[str, float] = {}
        for dep in tuple(pending):
            health = self.board.get(dep.id)
            wait = health.held_for(now) if health is not None else 0.0
            if wait <= 0.0:
                continue
            if wait > max_wait or wait + MIN_ATTEMPT_SECONDS > walk.deadline.remaining(now):
                pending.remove(dep)
                skipped.append(f"{dep.id}: rate limited")
                walk.throttled(wait)
            else:
                ready_at[dep.id] = now + wait
        if ready_at:  # else every key is 0.0: the stable sort would leave the order as it is
            pending.sort(key=lambda dep: ready_at.get(dep.id, 0.0))
        return ready_at

    async def _wait_turn(self, walk: Walk, dep: Deployment, ready_at: float | None) -> bool:
        """Sleep out a deployment's back-off; False when the budget or the deadline is spent."""
        if len(walk.ctx.attempts) >= walk.max_attempts:
            return False
        now = self._clock()
        if ready_at is not None and ready_at > now:
            wait = ready_at - now
            walk.ctx.waited_seconds += wait
            await self._sleep(wait)
            now = self._clock()
        left = walk.deadline.remaining(now)
        if left < MIN_ATTEMPT_SECONDS:
            walk.out_of_time = True
            return False
        if walk.timed_out and left < dep.timeouts.first_byte:
            walk.first_byte_stop = (dep.timeouts.first_byte, left)
            return False
        return True

    def _skip(self, walk: Walk, dep: Deployment, skipped: list[str]) -> None:
        health = self.board.get(dep.id)
        wait = health.breaker.retry_in() if health is not None else 0.0
        walk.hint_retry_after(wait or None)
        walk.refused += 1
        if not any(a.deployment == dep.id for a in walk.ctx.attempts):
            # One this request already tried is listed by its attempts.
            skipped.append(f"{dep.id}: circuit open")

    async def _one(
        self, walk: Walk, dep: Deployment, lease: Lease, attempt: Attempt[T], hold: bool
    ) -> T:
        ctx = walk.ctx
        ctx.deployment = dep.id
        ctx.model_used = dep.model_name
        timeouts = walk.deadline.timeouts(dep.timeouts, self._clock())
        started = time.perf_counter()
        try:
            result = await attempt(dep, timeouts)
        except UpstreamError as err:
            seconds = _since(started)
            ctx.attempts.append(AttemptRecord(dep.id, err.kind, err.upstream_status, seconds))
            walk.failed(err)
            walk.timed_out = walk.timed_out or timed_out(err)
            if err.kind in CALLER_FAULTS:
                lease.released()
            elif timed_out(err) and walk.deadline.remaining(self._clock()) < MIN_ATTEMPT_SECONDS:
                # Cut short by the request's deadline, not by the deployment's own bound.
                walk.out_of_time = True
                lease.released()
            elif is_rate_limit(err):
                lease.rate_limited(err.retry_after)
            else:
                lease.failed(seconds, timed_out=timed_out(err))
            lease.close()
            raise
        except BaseException:
            lease.close()
            raise
        seconds = _since(started)
        ctx.attempts.append(AttemptRecord(dep.id, "ok", 200, seconds))
        lease.succeeded(seconds)
        if not hold:
            lease.close()
        return result


def health_board(
    catalog: Catalog,
    on_change: StateHook | None = None,
    clock: Clock = time.monotonic,
    *,
    on_panic: PanicHook | None = None,
) -> HealthBoard:
    """A health board that already knows every deployment of ``catalog`` (all closed)."""
    board = HealthBoard(on_change, clock, on_panic=on_panic)
    for name in catalog.model_names:
        route = catalog.get(name)
        for dep in route.deployments if route is not None else ():
            board.register(dep.id, dep.settings.breaker)
    return board


def settle_stream(ctx: RequestContext, lease: Lease | None) -> None:
    """Free a streamed attempt's deployment once its stream ended.

    A stream the upstream broke mid-way (``ctx.outcome == "partial"``) counts against the
    deployment's breaker and marks the attempt ``partial`` for the ledger.
    """
    if lease is None:
        return
    if ctx.outcome == "partial":
        if ctx.attempts:
            ctx.attempts[-1].outcome = "partial"
        if ctx.error_kind not in CALLER_FAULTS:
            lease.broke_later()
    lease.close()


async def _take_slot(
    capacity: Capacity[Deployment], walk: Walk, dep: Deployment, lease: Lease
) -> bool:
    """Take ``dep``'s slot under its caps, freed when ``lease`` closes; False at capacity."""
    try:
        slot = await capacity.take(dep)
    except BaseException:
        lease.close()
        raise
    if isinstance(slot, float):
        lease.close()
        walk.at_capacity(slot)
        return False
    lease.then(functools.partial(_give_back, slot, walk.ctx))
    return True


def _to_front(pending: list[Deployment], deployment: str) -> None:
    """Move ``deployment`` (admission already holds its slot) to the head of ``pending``."""
    for index, dep in enumerate(pending):
        if dep.id == deployment:
            if index:
                pending.insert(0, pending.pop(index))
            return


def _held_value(held: Held[T]) -> T:
    return held.value


def _as_held(held: Held[T]) -> Held[T]:
    return held


def _give_back(slot: Slot, ctx: RequestContext) -> None:
    """Free an attempt's slot under its deployment's caps, settling TPM with the usage seen."""
    slot.release(ctx.usage)


def _since(started: float) -> float:
    return time.perf_counter() - started
