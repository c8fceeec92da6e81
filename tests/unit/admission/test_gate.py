"""The Admitter end to end over the memory limiter: key quotas answered at once, deployment caps
queued by priority, TPM trued up, adaptive slots, degradation actions, and the free fast path."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Sequence

import pytest
from prometheus_client import CollectorRegistry
from tests.unit.admission.clock import FakeClock
from tests.unit.admission.support import WrappedLimiter, catalog, key, model, request
from tests.waiting import eventually

from relaygate.admission import Admitter, Ticket
from relaygate.admission.metrics import AdmissionMetrics
from relaygate.core.context import AttemptRecord, RequestContext
from relaygate.core.errors import RateLimitedError
from relaygate.core.types import Usage
from relaygate.limits import BucketAsk, MemoryLimiter
from relaygate.limits.limiter import Admission, BucketSettle, Lease
from relaygate.routing.catalog import Catalog
from relaygate.settings.limits import (
    AdaptiveSettings,
    DegradeSettings,
    LevelActions,
    LevelThresholds,
    LimitSettings,
    PriorityReserveSettings,
    QueueSettings,
)

NO_HEADERS: dict[str, str] = {}


class ExplodingLimiter(MemoryLimiter):
    """A limiter that must never be asked."""

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        raise AssertionError(f"limiter asked for {asks}")


def context(
    ticket: Ticket, seconds: float = 0.05, outcome: str = "ok", status: int = 200
) -> RequestContext:
    ctx = RequestContext("req", "openai.chat", "openai")
    dep = ticket.route.deployments[0].id
    ctx.attempts.append(AttemptRecord(dep, outcome, status, seconds))
    return ctx


@pytest.fixture
async def models() -> AsyncIterator[Catalog]:
    cat = catalog(
        model("free"),
        model("capped", {"max_concurrency": 2}),
        model(
            "pair",
            {"name": "pair-a", "max_concurrency": 1},
            {"name": "pair-b", "max_concurrency": 1},
        ),
        model("tokens", {"tpm": 1000}),
        model("big", {"name": "big-0"}),
        model("small", {"name": "small-0"}),
    )
    yield cat
    await cat.close()


def admitter(cat: Catalog, limiter: MemoryLimiter | None = None, **limits: object) -> Admitter:
    settings = LimitSettings.model_validate(limits)
    metrics = AdmissionMetrics(CollectorRegistry())
    return Admitter(settings, limiter or MemoryLimiter(), lookup=cat.get, metrics=metrics)


async def test_no_limits_anywhere_never_asks_the_limiter(models: Catalog) -> None:
    gate = admitter(models, ExplodingLimiter())
    route = models.resolve("free")
    ticket = await gate.admit(key(), route, request("free"), NO_HEADERS)
    assert ticket.route is route and ticket.admission is None
    gate.finish(ticket, context(ticket))
    for _ in range(100):
        gate.finish(await gate.admit(key(), route, request("free"), NO_HEADERS), context(ticket))


async def test_key_quota_is_refused_at_once_with_retry_after(models: Catalog) -> None:
    gate = admitter(models)
    limited = key(rps=2.0, burst=2)
    route = models.resolve("capped")
    for _ in range(2):
        gate.finish(
            await gate.admit(limited, route, request(), NO_HEADERS),
            RequestContext("r", "x", "openai"),
        )
    with pytest.raises(RateLimitedError) as refused:
        await gate.admit(limited, route, request(), NO_HEADERS)
    assert refused.value.status == 429
    assert 0 < (refused.value.retry_after or 0) <= 0.5
    assert "This API key exceeded its request rate limit" in refused.value.message
    assert "retry in 1 s" in refused.value.message


async def test_key_concurrency_is_released_by_finish(models: Catalog) -> None:
    gate = admitter(models)
    one = key(max_concurrent=1)
    route = models.resolve("free")
    ticket = await gate.admit(one, route, request("free"), NO_HEADERS)
    with pytest.raises(RateLimitedError, match="limit of concurrent requests"):
        await gate.admit(one, route, request("free"), NO_HEADERS)
    gate.finish(ticket, RequestContext("r", "x", "openai"))
    gate.finish(ticket, RequestContext("r", "x", "openai"))  # twice: harmless
    gate.finish(
        await gate.admit(one, route, request("free"), NO_HEADERS),
        RequestContext("r", "x", "openai"),
    )


async def test_full_deployment_queues_then_admits(models: Catalog) -> None:
    gate = admitter(models, queue=QueueSettings(max_wait_seconds=2.0, poll_seconds=5.0))
    route = models.resolve("capped")
    held = [await gate.admit(key(), route, request(), NO_HEADERS) for _ in range(2)]
    waiting = asyncio.create_task(gate.admit(key(), route, request(), NO_HEADERS))
    await eventually(lambda: gate.queued == 1)
    await asyncio.sleep(0.05)  # time spent in the queue: the ticket must report it
    assert gate.queued == 1 and not waiting.done()
    gate.finish(held[0], context(held[0]))
    ticket = await asyncio.wait_for(waiting, 1.0)
    assert ticket.queued_seconds >= 0.04
    assert gate.queued == 0


async def test_protected_keys_wait_up_to_the_reserves_own_cap(models: Catalog) -> None:
    """``priority_reserve.max_wait_seconds``: lower keys are refused at once (the queue's cap
    is 0 here) while a protected key waits for the next slot; its caller may still ask for
    less."""
    gate = admitter(
        models,
        queue=QueueSettings(max_wait_seconds=0.0, poll_seconds=5.0),
        priority_reserve=PriorityReserveSettings(max_wait_seconds=2.0),
    )
    route = models.resolve("capped")
    high = key(id="high", priority=10)
    held = [await gate.admit(high, route, request(), NO_HEADERS) for _ in range(2)]
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), route, request(), NO_HEADERS)
    with pytest.raises(RateLimitedError):
        await gate.admit(high, route, request(), {"x-relaygate-max-wait-ms": "0"})
    waiting = asyncio.create_task(gate.admit(high, route, request(), NO_HEADERS))
    await eventually(lambda: gate.queued == 1)
    gate.finish(held[0], context(held[0]))
    ticket = await asyncio.wait_for(waiting, 1.0)
    assert ticket.capacity is not None and ticket.capacity.reserved is not None
    assert gate.queued == 0


async def test_a_protected_waiter_is_not_refused_on_the_forecast(models: Catalog) -> None:
    """The queue hands the next slot freed in this process to its highest-priority waiter: a
    protected one waits for it until its budget is spent. The forecast (here two admissions
    lately: one every ~250 ms, beyond the 50 ms budget) still refuses a lower key at once."""
    gate = admitter(models, queue=QueueSettings(max_wait_seconds=0.05, poll_seconds=5.0))
    route = models.resolve("capped")
    high = key(id="high", priority=10)
    held = [await gate.admit(high, route, request(), NO_HEADERS) for _ in range(2)]
    with pytest.raises(RateLimitedError):
        gate.refuse_busy(key(), route, NO_HEADERS)
    gate.refuse_busy(high, route, NO_HEADERS)  # may wait: not refused before its body is read
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), route, request(), NO_HEADERS)
    assert gate.queued == 0
    waiting = asyncio.create_task(gate.admit(high, route, request(), NO_HEADERS))
    await eventually(lambda: gate.queued == 1 or waiting.done())
    assert not waiting.done()
    gate.finish(held[0], context(held[0]))
    ticket = await asyncio.wait_for(waiting, 1.0)
    assert ticket.capacity is not None and ticket.capacity.reserved is not None


async def test_the_wait_budget_counts_from_the_requests_arrival(models: Catalog) -> None:
    """``max_wait_seconds`` bounds the time from a lower key's arrival (``spent`` seconds before
    the gate: reading, parsing, the loop's backlog) to its admission or refusal, not from when it
    reached the queue, so its refusal comes within the cap however late it got there. A
    protected key's budget is for its success: it still counts from the queue."""
    clock = FakeClock()
    settings = LimitSettings(queue=QueueSettings(max_wait_seconds=0.05, poll_seconds=0.005))
    metrics = AdmissionMetrics(CollectorRegistry())
    gate = Admitter(settings, MemoryLimiter(), lookup=models.get, metrics=metrics, clock=clock)
    route = models.resolve("capped")
    held = [await gate.admit(key(), route, request(), NO_HEADERS) for _ in range(2)]
    clock.advance(100.0)  # the admission rate forgotten: no forecast refuses a lower key here
    gate.refuse_busy(key(), route, NO_HEADERS, spent=0.04)  # 10 ms left: it may wait
    with pytest.raises(RateLimitedError):  # its whole budget spent before it got here
        gate.refuse_busy(key(), route, NO_HEADERS, spent=0.05)
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), route, request(), NO_HEADERS, spent=0.05)
    assert gate.queued == 0
    late = asyncio.create_task(gate.admit(key(id="late"), route, request(), NO_HEADERS, 0.04))
    await eventually(lambda: gate.queued == 1)
    early = asyncio.create_task(gate.admit(key(id="early"), route, request(), NO_HEADERS))
    high = key(id="high", priority=10)
    protected = asyncio.create_task(gate.admit(high, route, request(), NO_HEADERS, 0.04))
    await eventually(lambda: gate.queued == 3)
    clock.advance(0.02)  # past the late one's deadline (arrival + 50 ms), not the others'
    with pytest.raises(RateLimitedError):
        await asyncio.wait_for(late, 5.0)
    assert not early.done() and not protected.done()
    for ticket, waiter in zip(held, (protected, early), strict=True):
        gate.finish(ticket, context(ticket))
        admitted = await asyncio.wait_for(waiter, 5.0)
        assert admitted.capacity is not None and admitted.capacity.reserved is not None


async def test_busy_refusal_is_immediate_and_says_so(models: Catalog) -> None:
    gate = admitter(models, queue=QueueSettings(max_wait_seconds=0.0))
    route = models.resolve("capped")
    for _ in range(2):
        await gate.admit(key(), route, request(), NO_HEADERS)
    with pytest.raises(RateLimitedError) as refused:
        await gate.admit(key(), route, request(), NO_HEADERS)
    assert gate.queued == 0  # refused without waiting: it never joined the queue
    assert refused.value.message.startswith("relaygate is busy: retry in ")
    assert refused.value.retry_after is not None


async def test_caller_can_shorten_its_wait(models: Catalog) -> None:
    gate = admitter(models, queue=QueueSettings(max_wait_seconds=5.0, poll_seconds=0.01))
    route = models.resolve("capped")
    for _ in range(2):
        await gate.admit(key(), route, request(), NO_HEADERS)
    started = time.perf_counter()
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), route, request(), {"x-relaygate-max-wait-ms": "30"})
    # Refused at once (its expected wait is over 30 ms) or after waiting 30 ms: never later.
    assert time.perf_counter() - started < 0.5
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), route, request(), {"x-stainless-timeout": "0"})


async def test_higher_priority_is_admitted_first(models: Catalog) -> None:
    gate = admitter(models, queue=QueueSettings(max_wait_seconds=2.0, poll_seconds=5.0))
    route = models.resolve("capped")
    held = [await gate.admit(key(), route, request(), NO_HEADERS) for _ in range(2)]
    low = asyncio.create_task(gate.admit(key(id="low"), route, request(), NO_HEADERS))
    await eventually(lambda: gate.queued == 1)
    high = asyncio.create_task(gate.admit(key(id="high", priority=5), route, request(), NO_HEADERS))
    await eventually(lambda: gate.queued == 2)
    gate.finish(held[0], context(held[0]))
    await asyncio.wait_for(high, 1.0)
    assert not low.done()
    gate.finish(held[1], context(held[1]))
    await asyncio.wait_for(low, 1.0)


async def test_several_deployments_each_keep_their_own_cap(models: Catalog) -> None:
    gate = admitter(models, queue=QueueSettings(max_wait_seconds=0.0))
    route = models.resolve("pair")
    first = await gate.admit(key(), route, request(), NO_HEADERS)
    second = await gate.admit(key(), route, request(), NO_HEADERS)
    assert first.capacity is not None and second.capacity is not None
    assert {first.capacity.reserved, second.capacity.reserved} == {"pair-a", "pair-b"}
    # The route is not narrowed: the attempt loop may still fail over to the other deployment.
    assert first.route is route and len(first.route.deployments) == 2
    with pytest.raises(RateLimitedError):
        await gate.admit(key(), route, request(), NO_HEADERS)


async def test_tpm_reserves_then_trues_up_from_usage(models: Catalog) -> None:
    limiter = MemoryLimiter()
    gate = admitter(models, limiter, output_token_reserve=100)
    route = models.resolve("tokens")
    ticket = await gate.admit(key(tpm=5000), route, request(max_tokens=400), NO_HEADERS)
    reserved = 5000 - limiter.tokens("k:key-1:tpm", 5000 / 60, 5000)
    assert 400 < reserved < 440  # the output allowance plus a small input estimate
    ctx = context(ticket)
    ctx.usage = Usage(input_tokens=10, output_tokens=20)
    gate.finish(ticket, ctx)
    assert 5000 - limiter.tokens("k:key-1:tpm", 5000 / 60, 5000) == pytest.approx(30, abs=1)
    assert 1000 - limiter.tokens("d:tokens#0:tpm", 1000 / 60, 1000) == pytest.approx(30, abs=1)


async def test_failed_request_gives_its_reservation_back(models: Catalog) -> None:
    limiter = MemoryLimiter()
    gate = admitter(models, limiter)
    ticket = await gate.admit(key(), models.resolve("tokens"), request(), NO_HEADERS)
    assert limiter.tokens("d:tokens#0:tpm", 1000 / 60, 1000) < 1000 - 500
    gate.finish(ticket, RequestContext("r", "x", "openai"))
    assert limiter.tokens("d:tokens#0:tpm", 1000 / 60, 1000) == pytest.approx(1000, abs=1)


async def test_adaptive_limit_gates_a_deployment_without_caps(models: Catalog) -> None:
    adaptive = AdaptiveSettings(enabled=True, initial_limit=2, min_limit=1, max_limit=10)
    gate = admitter(
        models, ExplodingLimiter(), adaptive=adaptive, queue=QueueSettings(max_wait_seconds=0)
    )
    route = models.resolve("free")
    tickets = [await gate.admit(key(), route, request(), NO_HEADERS) for _ in range(2)]
    with pytest.raises(RateLimitedError, match="relaygate is busy"):
        await gate.admit(key(), route, request(), NO_HEADERS)
    gate.finish(tickets[0], context(tickets[0]))
    await gate.admit(key(), route, request(), NO_HEADERS)
    limit = gate.adaptive.find("free#0")
    assert limit is not None and limit.in_flight == 2


async def test_overload_answers_shrink_the_adaptive_limit(models: Catalog) -> None:
    adaptive = AdaptiveSettings(enabled=True, initial_limit=10, min_limit=1, max_limit=10)
    gate = admitter(models, adaptive=adaptive)
    route = models.resolve("free")
    for _ in range(3):
        ticket = await gate.admit(key(), route, request(), NO_HEADERS)
        gate.finish(ticket, context(ticket, outcome="rate_limited", status=429))
        await asyncio.sleep(0.11)  # past the adaptive limit's sampling window: the behaviour
    limit = gate.adaptive.find("free#0")
    assert limit is not None and limit.limit < 10


def degrading(**actions: LevelActions) -> DegradeSettings:
    return DegradeSettings(
        enabled=True,
        window_seconds=5,
        min_samples=5,
        reduced=LevelThresholds(latency_p90_ms=1000, error_rate=0.2),
        degraded=LevelThresholds(latency_p90_ms=5000, error_rate=0.5),
        min_hold_seconds=30,
        **actions,
    )


async def trouble(gate: Admitter, models: Catalog, name: str) -> None:
    """Ten failed upstream calls for ``name``, then a second later so the level is evaluated."""
    route = models.resolve(name)
    for _ in range(10):
        ticket = await gate.admit(key(priority=9), route, request(), NO_HEADERS)
        gate.finish(ticket, context(ticket, outcome="upstream", status=500))
    gate.degrade.get(name)._evaluated -= 1  # as if the second had turned


async def test_degraded_level_sheds_low_priority_and_uses_the_fallback(models: Catalog) -> None:
    actions = LevelActions(
        fallback_models={"big": "small"}, serve_stale=True, shed_below_priority=1
    )
    gate = admitter(models, degrade=degrading(reduced_actions=actions, degraded_actions=actions))
    await trouble(gate, models, "big")
    with pytest.raises(RateLimitedError, match="relaygate is busy") as shed:
        await gate.admit(key(priority=0), models.resolve("big"), request(), NO_HEADERS)
    assert shed.value.retry_after == 30
    ticket = await gate.admit(key(priority=1), models.resolve("big"), request(), NO_HEADERS)
    assert ticket.route.name == "small" and ticket.serve_stale
    only_big = key(priority=1, allowed_models=("big",))
    ticket = await gate.admit(only_big, models.resolve("big"), request(), NO_HEADERS)
    assert ticket.route.name == "big"


async def test_limiter_leases_are_released_in_the_background(models: Catalog) -> None:
    released: list[Lease | None] = []

    class Remote(MemoryLimiter):
        """Not a MemoryLimiter as far as the Admitter's fast path knows."""

        async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
            released.append(lease)
            self.release_now(lease, settles)

    inner = Remote()
    settings = LimitSettings(queue=QueueSettings(max_wait_seconds=1.0, poll_seconds=5))
    gate = Admitter(settings, WrappedLimiter(inner), lookup=models.get)
    gate.start()
    route = models.resolve("capped")
    held = [await gate.admit(key(), route, request(), NO_HEADERS) for _ in range(2)]
    reserved = held[0].capacity.reserved_slot if held[0].capacity else None
    assert reserved is not None and reserved.lease is not None
    waiting = asyncio.create_task(gate.admit(key(), route, request(), NO_HEADERS))
    await eventually(lambda: gate.queued == 1)
    gate.finish(held[0], context(held[0]))
    await asyncio.wait_for(waiting, 1.0)
    assert released == [reserved.lease]
    await gate.close()
