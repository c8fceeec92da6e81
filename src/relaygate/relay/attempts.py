"""The attempt loop shared by whole and streamed answers.

For each model of the plan (the requested one, then its fallback chain) the deployments are put in
the model's balancing order and tried in passes: every deployment once, then again after its own
back-off (full jitter, ``Retry-After`` honoured up to a cap), up to ``attempts_per_deployment``
passes. A deployment whose breaker is open is skipped without a call; one that says the gateway's
credentials or model name are wrong (401, 403, 404) is not tried again. A caller's own mistake
(400, 413) ends the loop at once. ``max_attempts`` bounds the calls of one request, and the
request's deadline bounds everything: attempts get timeouts cut to what is left of it, and no
back-off sleep reaches past it. Nothing here has sent a byte to the caller, so every retry is safe.

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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from relaygate.admission.messages import busy_message
from relaygate.core.capacity import Capacity, Slot
from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.core.errors import (
    ErrorKind,
    GatewayError,
    NoRouteError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from relaygate.routing.balance import order
from relaygate.routing.breaker import Clock
from relaygate.routing.catalog import Catalog, Deployment, ModelRoute
from relaygate.routing.deadline import Deadline
from relaygate.routing.health import HealthBoard, Lease, StateHook
from relaygate.routing.planner import model_chain
from relaygate.routing.retry import MIN_ATTEMPT_SECONDS
from relaygate.transport.base import Timeouts

T = TypeVar("T")
Attempt = Callable[[Deployment, Timeouts], Awaitable[T]]
Sleep = Callable[[float], Awaitable[None]]

CALLER_FAULTS = frozenset({"invalid_request", "payload_too_large"})
"""Error kinds that are the caller's doing: never retried, never held against a deployment."""
WRONG_DEPLOYMENT = frozenset({401, 403, 404})
"""Upstream statuses that mean this deployment is misconfigured: try the next one, not this."""


class GatewayTimeoutError(GatewayError):
    """The request's deadline ran out, or every attempt timed out; ``attempts`` lists the tries."""

    status = 504
    kind: ErrorKind = "timeout"

    def __init__(self, message: str, attempts: Sequence[str]) -> None:
        super().__init__(message)
        self.attempts = tuple(attempts)


@dataclass(slots=True)
class Held(Generic[T]):
    """A successful attempt whose deployment stays busy until ``lease`` is closed (a stream)."""

    value: T
    lease: Lease


class _Walk:
    """One request's progress through its plan: the budget left and what went wrong so far."""

    __slots__ = (
        "busy",
        "ctx",
        "deadline",
        "last_error",
        "max_attempts",
        "out_of_time",
        "retry_after",
    )

    def __init__(self, ctx: RequestContext, deadline: Deadline, max_attempts: int) -> None:
        self.ctx = ctx
        self.deadline = deadline
        self.max_attempts = max_attempts
        self.last_error: UpstreamError | None = None
        self.out_of_time = False
        self.retry_after: float | None = None
        self.busy: float | None = None  # soonest room on a deployment found at capacity

    def at_capacity(self, seconds: float) -> None:
        if self.busy is None or seconds < self.busy:
            self.busy = seconds

    def failed(self, err: UpstreamError) -> None:
        self.last_error = err
        self.hint_retry_after(err.retry_after)

    def hint_retry_after(self, seconds: float | None) -> None:
        if seconds is not None and (self.retry_after is None or seconds < self.retry_after):
            self.retry_after = seconds

    def exhausted(self, skipped: Sequence[str]) -> GatewayError:
        """The error that says most about a request nothing could answer."""
        attempts = self.ctx.attempts
        last = self.last_error
        lone = len({a.deployment for a in attempts}) == 1 and not skipped
        if last is not None and lone and (not self.out_of_time or _timed_out(last)):
            # One deployment only: its own error (a 429 stays a 429 with Retry-After) says most.
            return last
        tried = [_describe(a) for a in attempts] + list(skipped)
        detail = "; ".join(tried) or "no deployment could be tried"
        if self.out_of_time or (attempts and all(a.outcome == "timeout" for a in attempts)):
            seconds = f"{self.deadline.seconds:g}"
            message = f"No upstream answered within the request deadline of {seconds} s ({detail})"
            return GatewayTimeoutError(message, tried)
        if not attempts and self.busy is not None:
            return RateLimitedError(busy_message(self.busy), retry_after=self.busy)
        if not attempts:
            message = f"No deployment is available: every circuit breaker is open ({detail})"
            return NoRouteError(message, tried, retry_after=self.retry_after)
        message = f"All upstream attempts failed ({detail})"
        return NoRouteError(message, tried, retry_after=self.retry_after)


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

    async def run(self, ctx: RequestContext, route: ModelRoute, attempt: Attempt[T]) -> T:
        """Run ``attempt`` against deployments until one succeeds; raise the most telling error."""
        held = await self._run(ctx, route, attempt, hold=False)
        return held.value

    async def run_held(
        self, ctx: RequestContext, route: ModelRoute, attempt: Attempt[T]
    ) -> Held[T]:
        """Like ``run``, but the deployment counts as busy until the returned lease is closed."""
        return await self._run(ctx, route, attempt, hold=True)

    async def _run(
        self, ctx: RequestContext, route: ModelRoute, attempt: Attempt[T], hold: bool
    ) -> Held[T]:
        policy = route.policy
        walk = _Walk(
            ctx, Deadline(self._clock(), policy.deadline_seconds), policy.retry.max_attempts
        )
        skipped: list[str] = []
        try:
            for model in model_chain(route, self._lookup):
                held = await self._model(walk, model, attempt, hold, skipped)
                if held is not None:
                    return held
                if walk.out_of_time or len(ctx.attempts) >= walk.max_attempts:
                    break
        finally:
            if ctx.capacity is not None:
                ctx.capacity.done()
        raise walk.exhausted(skipped)

    async def _model(
        self,
        walk: _Walk,
        model: ModelRoute,
        attempt: Attempt[T],
        hold: bool,
        skipped: list[str],
    ) -> Held[T] | None:
        """Passes over one model's deployments; ``None`` when none of them answered."""
        board, retry = self.board, model.policy.retry
        pending = order(
            model.policy.strategy, model.deployments, board.get, self._rng, self._clock()
        )
        capacity = walk.ctx.capacity
        if capacity is not None and capacity.reserved is not None:
            _to_front(pending, capacity.reserved)
        ready_at: dict[str, float] = {}
        for try_number in range(1, retry.attempts_per_deployment + 1):
            for dep in tuple(pending):
                if not await self._wait_turn(walk, ready_at.get(dep.id)):
                    return None
                lease = board.admit(dep.id, dep.settings.breaker)
                if lease is None:
                    pending.remove(dep)
                    skipped.append(self._skip(walk, dep))
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
                    if err.retryable and err.upstream_status not in WRONG_DEPLOYMENT:
                        left = walk.deadline.remaining(self._clock())
                        delay = retry.delay_within(try_number, err.retry_after, left, self._rng)
                    if delay is None:
                        pending.remove(dep)
                    else:
                        ready_at[dep.id] = self._clock() + delay
        return None

    async def _wait_turn(self, walk: _Walk, ready_at: float | None) -> bool:
        """Sleep out a deployment's back-off; False when the budget or the deadline is spent."""
        if len(walk.ctx.attempts) >= walk.max_attempts:
            return False
        now = self._clock()
        if ready_at is not None and ready_at > now:
            wait = ready_at - now
            walk.ctx.waited_seconds += wait
            await self._sleep(wait)
            now = self._clock()
        if walk.deadline.remaining(now) < MIN_ATTEMPT_SECONDS:
            walk.out_of_time = True
            return False
        return True

    def _skip(self, walk: _Walk, dep: Deployment) -> str:
        health = self.board.get(dep.id)
        wait = health.breaker.retry_in() if health is not None else 0.0
        walk.hint_retry_after(wait or None)
        return f"{dep.id}: circuit open"

    async def _one(
        self, walk: _Walk, dep: Deployment, lease: Lease, attempt: Attempt[T], hold: bool
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
            if err.kind in CALLER_FAULTS:
                lease.released()
            elif _timed_out(err) and walk.deadline.remaining(self._clock()) < MIN_ATTEMPT_SECONDS:
                # Cut short by the request's deadline, not by the deployment's own bound.
                walk.out_of_time = True
                lease.released()
            else:
                lease.failed(seconds, timed_out=_timed_out(err))
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
    catalog: Catalog, on_change: StateHook | None = None, clock: Clock = time.monotonic
) -> HealthBoard:
    """A health board that already knows every deployment of ``catalog`` (all closed)."""
    board = HealthBoard(on_change, clock)
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
    capacity: Capacity[Deployment], walk: _Walk, dep: Deployment, lease: Lease
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


def _give_back(slot: Slot, ctx: RequestContext) -> None:
    """Free an attempt's slot under its deployment's caps, settling TPM with the usage seen."""
    slot.release(ctx.usage)


def _describe(record: AttemptRecord) -> str:
    return f"{record.deployment}: {record.outcome} {record.status or ''}".strip()


def _timed_out(err: UpstreamError) -> bool:
    return isinstance(err, UpstreamTimeoutError) or err.kind == "timeout"


def _since(started: float) -> float:
    return time.perf_counter() - started
