"""The attempt loop shared by whole and streamed answers.

Walks the plan (deployments in order, fallbacks last), retrying a deployment with back-off while
its error is retryable, moving on to the next one after ``attempts_per_deployment`` tries, and
stopping at ``max_attempts``. Nothing here has sent a byte to the caller, so every retry is safe.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from relaygate.core.errors import GatewayError, NoRouteError, UpstreamError
from relaygate.relay.catalog import Deployment, ModelRoute
from relaygate.relay.context import AttemptRecord, RequestContext
from relaygate.routing.planner import plan_attempts
from relaygate.routing.retry import RetryPolicy

T = TypeVar("T")
Attempt = Callable[[Deployment], Awaitable[T]]


class AttemptRunner:
    def __init__(
        self,
        policy: RetryPolicy,
        lookup: Callable[[str], ModelRoute | None],
        rng: random.Random | None = None,
    ) -> None:
        self._policy = policy
        self._lookup = lookup
        self._rng = rng or random.Random()

    async def run(self, ctx: RequestContext, route: ModelRoute, attempt: Attempt[T]) -> T:
        """Run ``attempt`` against deployments until one succeeds; raise the most telling error."""
        plan = plan_attempts(route, self._lookup, self._rng)
        last_error: UpstreamError | None = None
        for deployment in plan:
            for try_number in range(1, self._policy.attempts_per_deployment + 1):
                if len(ctx.attempts) >= self._policy.max_attempts:
                    raise _exhausted(ctx, last_error)
                if try_number > 1 and last_error is not None:
                    await self._back_off(ctx, try_number - 1, last_error)
                try:
                    return await self._one(ctx, deployment, attempt)
                except UpstreamError as err:
                    last_error = err
                    if not err.retryable:
                        raise
                    if err.upstream_status in (401, 403, 404):
                        break
        raise _exhausted(ctx, last_error)

    async def _one(self, ctx: RequestContext, deployment: Deployment, attempt: Attempt[T]) -> T:
        ctx.deployment = deployment.id
        ctx.model_used = deployment.model_name
        started = time.perf_counter()
        try:
            result = await attempt(deployment)
        except UpstreamError as err:
            ctx.attempts.append(
                AttemptRecord(deployment.id, err.kind, err.upstream_status, _since(started))
            )
            raise
        ctx.attempts.append(AttemptRecord(deployment.id, "ok", 200, _since(started)))
        return result

    async def _back_off(self, ctx: RequestContext, retry_number: int, err: UpstreamError) -> None:
        delay = self._policy.backoff(retry_number, err.retry_after, self._rng)
        ctx.waited_seconds += delay
        await asyncio.sleep(delay)


def _since(started: float) -> float:
    return time.perf_counter() - started


def _exhausted(ctx: RequestContext, last_error: UpstreamError | None) -> GatewayError:
    tried = [f"{a.deployment}: {a.outcome} {a.status or ''}".strip() for a in ctx.attempts]
    if last_error is not None and len({a.deployment for a in ctx.attempts}) <= 1:
        # One deployment only: its own error (a 429 stays a 429 with Retry-After) says most.
        return last_error
    retry_after = last_error.retry_after if last_error is not None else None
    detail = "; ".join(tried) or "no deployment could be tried"
    return NoRouteError(f"All upstream attempts failed ({detail})", tried, retry_after=retry_after)
