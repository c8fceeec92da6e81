"""Deployment caps taken per attempt: the Admitter reserves, the attempt loop takes and frees.

Admission no longer narrows a model to one deployment: a request fails over to the model's other
capped deployments and to fallback models, each charged when (and only while) it is tried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from tests.unit.admission.support import catalog, key, request
from tests.waiting import eventually

from relaygate.admission import Admitter, Ticket
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import RequestContext
from relaygate.core.errors import NoRouteError, RateLimitedError, UpstreamError
from relaygate.core.types import Usage
from relaygate.limits import BucketAsk, MemoryLimiter
from relaygate.limits.limiter import Admission
from relaygate.relay.attempts import AttemptRunner, health_board, settle_stream
from relaygate.routing.catalog import Catalog, Deployment
from relaygate.settings.limits import AdaptiveSettings, LimitSettings, QueueSettings
from relaygate.transport.base import Timeouts

NO_HEADERS: dict[str, str] = {}
ORDERED = {"strategy": "ordered", "attempts_per_deployment": 1}


def capped(name: str, fallbacks: Sequence[str] = (), **deps: dict[str, Any]) -> dict[str, Any]:
    deployments = [{"provider": "mock", "name": dep, **caps} for dep, caps in deps.items()]
    return {
        "name": name,
        "deployments": deployments,
        "fallbacks": list(fallbacks),
        "routing": ORDERED,
    }


class CountingLimiter(MemoryLimiter):
    """Counts the limiter calls (each would be a Redis round trip with shared limits)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        self.calls += 1
        return await super().acquire(asks)


class Upstream:
    """Answers per deployment: an error to raise, or usage to report; records the calls."""

    def __init__(self, **failing: UpstreamError) -> None:
        self.failing = {k.replace("_", "-"): v for k, v in failing.items()}
        self.calls: list[str] = []
        self.usage = Usage(input_tokens=10, output_tokens=20)

    def __call__(self, ctx: RequestContext) -> Any:
        async def attempt(dep: Deployment, timeouts: Timeouts) -> str:
            self.calls.append(dep.id)
            if dep.id in self.failing:
                raise self.failing[dep.id]
            ctx.usage = self.usage
            return dep.id

        return attempt


def err500() -> UpstreamError:
    return UpstreamError("upstream error", status=502, upstream_status=500, retryable=True)


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(
        capped("pair", a={"max_concurrency": 1}, b={"max_concurrency": 1}),
        capped("main", ["spare"], main0={"max_concurrency": 1}),
        capped("spare", spare0={"max_concurrency": 1, "tpm": 6000}),
        capped("mixed", ["spare"], free0={}),
        capped("tokens", tok0={"tpm": 1000}),
    )
    yield cat
    await cat.close()


class Rig:
    """An Admitter and an AttemptRunner over one catalog and one memory limiter."""

    def __init__(self, cat: Catalog, limiter: MemoryLimiter, **limits: Any) -> None:
        self.catalog = cat
        self.limiter = limiter
        settings = LimitSettings.model_validate(
            {"queue": QueueSettings(max_wait_seconds=0.0), **limits}
        )
        metrics = AdmissionMetrics(CollectorRegistry())
        self.gate = Admitter(settings, limiter, lookup=cat.get, metrics=metrics)
        board = health_board(cat)
        self.runner = AttemptRunner(cat.get, board, random.Random(1))

    async def admit(self, name: str, text: str = "hello") -> tuple[Ticket, RequestContext]:
        ticket = await self.gate.admit(key(), self.catalog.resolve(name), request(text=text), {})
        ctx = RequestContext("req", "openai.chat", "openai")
        ctx.capacity = ticket.capacity
        return ticket, ctx

    def held(self, dep: str) -> int:
        return self.limiter.held(f"d:{dep}:conc")


async def test_load_spreads_over_both_capped_deployments_and_each_keeps_its_cap(
    models: Catalog,
) -> None:
    rig = Rig(models, MemoryLimiter())
    upstream = Upstream()
    streams = []
    for _ in range(2):
        ticket, ctx = await rig.admit("pair")
        streams.append((ticket, ctx, await rig.runner.run_held(ctx, ticket.route, upstream(ctx))))
    assert sorted(upstream.calls) == ["a", "b"]
    assert rig.held("a") == 1 and rig.held("b") == 1
    with pytest.raises(RateLimitedError, match="relaygate is busy"):
        await rig.admit("pair")
    for ticket, ctx, held in streams:
        settle_stream(ctx, held.lease)  # the stream ended: its slot is free at once
        rig.gate.finish(ticket, ctx)
    assert rig.held("a") == 0 and rig.held("b") == 0


async def test_failed_deployment_fails_over_to_the_other_capped_one(models: Catalog) -> None:
    rig = Rig(models, MemoryLimiter())
    ticket, ctx = await rig.admit("pair")
    reserved = ticket.capacity.reserved if ticket.capacity else None
    other = "b" if reserved == "a" else "a"
    upstream = Upstream(**{reserved or "": err500()})
    assert await rig.runner.run(ctx, ticket.route, upstream(ctx)) == other
    assert upstream.calls == [reserved, other]
    assert rig.held("a") == 0 and rig.held("b") == 0  # both attempts over: both slots free
    rig.gate.finish(ticket, ctx)


async def test_deployment_at_its_cap_is_skipped_and_named(models: Catalog) -> None:
    rig = Rig(models, MemoryLimiter())
    first, first_ctx = await rig.admit("pair")
    held = await rig.runner.run_held(first_ctx, first.route, Upstream()(first_ctx))
    second, ctx = await rig.admit("pair")
    busy = first_ctx.deployment or ""
    upstream = Upstream(**{"a" if busy == "b" else "b": err500()})
    with pytest.raises(NoRouteError) as failed:
        await rig.runner.run(ctx, second.route, upstream(ctx))
    assert f"{busy}: at capacity" in failed.value.message
    assert busy not in upstream.calls
    settle_stream(first_ctx, held.lease)
    rig.gate.finish(first, first_ctx)
    rig.gate.finish(second, ctx)


async def test_fallback_models_cap_is_charged_and_honoured(models: Catalog) -> None:
    rig = Rig(models, MemoryLimiter())
    first, first_ctx = await rig.admit("main")
    assert first.capacity is not None and first.capacity.reserved == "main0"
    upstream = Upstream()
    held = await rig.runner.run_held(first_ctx, first.route, upstream(first_ctx))
    # main0 is full: admission reserves the fallback's deployment, the loop skips main0.
    second, ctx = await rig.admit("main")
    assert second.capacity is not None and second.capacity.reserved == "spare0"
    answer = await rig.runner.run_held(ctx, second.route, upstream(ctx))
    assert answer.value == "spare0" and rig.held("spare0") == 1
    assert [a.deployment for a in ctx.attempts] == ["spare0"]
    with pytest.raises(RateLimitedError, match="relaygate is busy"):
        await rig.admit("main")  # every deployment of the chain is at its cap
    settle_stream(ctx, answer.lease)
    rig.gate.finish(second, ctx)
    assert rig.held("spare0") == 0
    spare = 6000 - rig.limiter.tokens("d:spare0:tpm", 100, 6000)
    assert spare == pytest.approx(30, abs=1)  # trued up to the usage of the answer
    settle_stream(first_ctx, held.lease)
    rig.gate.finish(first, first_ctx)


async def test_every_deployment_at_capacity_in_the_loop_is_a_busy_429(models: Catalog) -> None:
    rig = Rig(models, MemoryLimiter())
    first, first_ctx = await rig.admit("main")
    held = await rig.runner.run_held(first_ctx, first.route, Upstream()(first_ctx))
    second, ctx = await rig.admit("main")
    # Someone else takes the fallback's last slot between admission and the attempt.
    assert second.capacity is not None and second.capacity.reserved_slot is not None
    second.capacity.done()
    outside = rig.limiter.acquire_now([BucketAsk.concurrency("d:spare0:conc", 1)])
    assert outside.admitted
    upstream = Upstream()
    with pytest.raises(RateLimitedError) as busy:
        await rig.runner.run(ctx, second.route, upstream(ctx))
    assert busy.value.status == 429 and busy.value.retry_after is not None
    assert busy.value.message.startswith("relaygate is busy: retry in ")
    assert upstream.calls == []
    rig.limiter.release_now(outside.lease)
    settle_stream(first_ctx, held.lease)
    rig.gate.finish(first, first_ctx)
    rig.gate.finish(second, ctx)


async def test_uncapped_primary_costs_no_limiter_call(models: Catalog) -> None:
    limiter = CountingLimiter()
    rig = Rig(models, limiter)
    ticket, ctx = await rig.admit("mixed")
    assert ticket.capacity is not None and ticket.capacity.reserved is None
    assert await rig.runner.run(ctx, ticket.route, Upstream()(ctx)) == "free0"
    rig.gate.finish(ticket, ctx)
    assert limiter.calls == 0  # only the fallback has caps, and it was never tried


async def test_uncapped_primary_down_charges_the_fallback_per_attempt(models: Catalog) -> None:
    rig = Rig(models, CountingLimiter())
    ticket, ctx = await rig.admit("mixed")
    upstream = Upstream(free0=err500())
    held = await rig.runner.run_held(ctx, ticket.route, upstream(ctx))
    assert held.value == "spare0" and rig.held("spare0") == 1
    settle_stream(ctx, held.lease)
    assert rig.held("spare0") == 0
    rig.gate.finish(ticket, ctx)


async def test_tpm_reservation_is_settled_with_the_attempts_usage(models: Catalog) -> None:
    rig = Rig(models, MemoryLimiter(), output_token_reserve=400)
    ticket, ctx = await rig.admit("tokens")
    assert 1000 - rig.limiter.tokens("d:tok0:tpm", 1000 / 60, 1000) > 400
    await rig.runner.run(ctx, ticket.route, Upstream()(ctx))
    # Settled when the attempt ended, before the request's finish.
    assert 1000 - rig.limiter.tokens("d:tok0:tpm", 1000 / 60, 1000) == pytest.approx(30, abs=1)
    rig.gate.finish(ticket, ctx)
    assert 1000 - rig.limiter.tokens("d:tok0:tpm", 1000 / 60, 1000) == pytest.approx(30, abs=1)


async def test_failed_attempt_gives_its_tpm_back_and_the_answer_is_charged(
    models: Catalog,
) -> None:
    rig = Rig(models, MemoryLimiter(), output_token_reserve=400)
    ticket, ctx = await rig.admit("main")
    upstream = Upstream(main0=err500())
    assert await rig.runner.run(ctx, ticket.route, upstream(ctx)) == "spare0"
    assert 6000 - rig.limiter.tokens("d:spare0:tpm", 100, 6000) == pytest.approx(30, abs=1)
    assert rig.held("main0") == 0 and rig.held("spare0") == 0
    rig.gate.finish(ticket, ctx)


async def test_unused_reservation_is_given_back_when_the_loop_ends(models: Catalog) -> None:
    rig = Rig(models, MemoryLimiter())
    ticket, ctx = await rig.admit("main")
    assert rig.held("main0") == 1
    bad = UpstreamError("bad", status=400, upstream_status=400, kind="invalid_request")
    with pytest.raises(UpstreamError):
        await rig.runner.run(ctx, ticket.route, Upstream(main0=bad)(ctx))
    assert rig.held("main0") == 0
    rig.gate.finish(ticket, ctx)


async def test_adaptive_limit_is_taken_per_attempt(models: Catalog) -> None:
    adaptive = AdaptiveSettings(enabled=True, initial_limit=1, min_limit=1, max_limit=4)
    rig = Rig(models, MemoryLimiter(), adaptive=adaptive)
    ticket, ctx = await rig.admit("mixed")
    upstream = Upstream(free0=err500())
    held = await rig.runner.run_held(ctx, ticket.route, upstream(ctx))
    free, spare = rig.gate.adaptive.find("free0"), rig.gate.adaptive.find("spare0")
    assert free is not None and spare is not None
    assert (free.in_flight, spare.in_flight) == (0, 1)  # the failed attempt's slot is back
    settle_stream(ctx, held.lease)
    rig.gate.finish(ticket, ctx)
    assert spare.in_flight == 0


async def test_queued_request_is_admitted_when_an_attempt_frees_its_slot(
    models: Catalog,
) -> None:
    rig = Rig(models, MemoryLimiter(), queue=QueueSettings(max_wait_seconds=2.0, poll_seconds=5))
    first, first_ctx = await rig.admit("pair")
    second, second_ctx = await rig.admit("pair")
    held = [
        await rig.runner.run_held(c, t.route, Upstream()(c))
        for t, c in ((first, first_ctx), (second, second_ctx))
    ]
    waiting = asyncio.create_task(rig.admit("pair"))
    await eventually(lambda: rig.gate.queued == 1)
    assert rig.gate.queued == 1 and not waiting.done()
    settle_stream(first_ctx, held[0].lease)  # the stream ended before the request's finish
    third, _ = await asyncio.wait_for(waiting, 1.0)
    assert third.capacity is not None and third.capacity.reserved == first_ctx.deployment
    for ticket, ctx, lease in ((first, first_ctx, None), (second, second_ctx, held[1].lease)):
        settle_stream(ctx, lease)
        rig.gate.finish(ticket, ctx)
    rig.gate.finish(third, RequestContext("r", "x", "openai"))
    assert rig.held("a") == 0 and rig.held("b") == 0
