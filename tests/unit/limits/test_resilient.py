"""Shared limits that outlive Redis: local limits (fail-open) or refusals (fail-closed) while it
is down, said in the logs and the state hook, and shared limits again once it answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace

import pytest
from tests.e2e.server import free_port
from tests.waiting import eventually

from relaygate.limits import (
    Admission,
    BucketAsk,
    LimiterUnavailableError,
    MemoryLimiter,
    RedisLimiter,
    ResilientLimiter,
)
from relaygate.limits.limiter import BucketSettle, Lease
from relaygate.limits.resilient import SHARED_DOWN

ASK = [BucketAsk.per_minute("k:rpm", 2)]


class FlakyShared(MemoryLimiter):
    """A shared limiter whose store can be switched off and on."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.released: list[Lease | None] = []

    async def start(self) -> None:
        await self.ping()

    async def ping(self) -> None:
        if self.down:
            raise LimiterUnavailableError("connection refused")

    async def acquire(self, asks: Sequence[BucketAsk]) -> Admission:
        await self.ping()
        admission = self.acquire_now(asks)
        if admission.lease is None:
            return admission
        return replace(admission, lease=replace(admission.lease, backend="redis"))

    async def release(self, lease: Lease | None, settles: Sequence[BucketSettle] = ()) -> None:
        await self.ping()
        self.released.append(lease)
        self.release_now(lease, settles)

    @property
    def backend(self) -> str:
        return "redis"

    def forget_leases(self) -> None:
        return None


async def test_fail_open_serves_with_local_limits_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    shared = FlakyShared()
    states: list[bool] = []
    limiter = ResilientLimiter(shared, probe_seconds=0.02, on_state=states.append)
    await limiter.start()
    assert states == [True] and limiter.backend == "redis"
    shared.down = True
    with caplog.at_level(logging.ERROR, logger="relaygate.admission"):
        first = await limiter.acquire(ASK)
    assert first.admitted and not limiter.shared_up and states == [True, False]
    assert "shared limits unavailable" in caplog.text
    assert (await limiter.acquire(ASK)).admitted
    assert not (await limiter.acquire(ASK)).admitted  # the local copy of the limit holds
    shared.down = False
    await eventually(lambda: limiter.shared_up)  # the prober notices
    assert limiter.shared_up and states == [True, False, True]
    assert (await limiter.acquire(ASK)).admitted  # counted in the shared store again
    await limiter.close()


async def test_fail_closed_refuses_while_down() -> None:
    shared = FlakyShared()
    limiter = ResilientLimiter(shared, fail_open=False, probe_seconds=5)
    await limiter.start()
    shared.down = True
    refused = await limiter.acquire(ASK)
    assert not refused.admitted and refused.refused == SHARED_DOWN and not refused.queueable
    assert refused.retry_after == 5
    await limiter.close()


async def test_leases_go_back_where_they_came_from() -> None:
    shared = FlakyShared()
    local = MemoryLimiter()
    limiter = ResilientLimiter(shared, local, probe_seconds=0.02)
    await limiter.start()
    slots = [BucketAsk.concurrency("c", 1)]
    remote = await limiter.acquire(slots)
    shared.down = True
    local_lease = await limiter.acquire(slots)
    assert local_lease.lease is not None and local_lease.lease.backend == "memory"
    assert local.held("c") == 1
    await limiter.release(local_lease.lease)
    assert local.held("c") == 0
    await limiter.release(remote.lease)  # Redis down: kept, no error
    assert shared.held("c") == 1
    shared.down = False
    await eventually(lambda: limiter.shared_up)  # the prober notices, and gives the lease back
    assert shared.released == [remote.lease] and shared.held("c") == 0
    await limiter.close()


async def test_a_release_redis_failed_is_sent_when_it_answers_not_left_to_the_ttl() -> None:
    # A starved or stalled Redis times out a release: its slot stayed taken for the lease's whole
    # TTL (15 s), refusing lower keys through the recovery after a surge.
    shared = FlakyShared()
    limiter = ResilientLimiter(shared, probe_seconds=0.02)
    await limiter.start()
    slots = [BucketAsk.concurrency("c", 1)]
    held = await limiter.acquire(slots)
    shared.down = True
    await limiter.release(held.lease)
    assert not limiter.shared_up and shared.held("c") == 1
    shared.down = False
    await eventually(lambda: limiter.shared_up)
    assert shared.held("c") == 0 and shared.released == [held.lease]
    assert (await limiter.acquire(slots)).admitted  # the one slot is free in the shared store
    await limiter.close()


async def test_redis_down_at_start_up_starts_on_local_limits() -> None:
    closed = RedisLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    states: list[bool] = []
    limiter = ResilientLimiter(closed, probe_seconds=0.05, on_state=states.append)
    await limiter.start()
    assert states == [False] and limiter.backend == "memory"
    assert (await limiter.acquire(ASK)).admitted
    await limiter.close()


async def test_unreachable_redis_costs_one_timeout_then_nothing() -> None:
    closed = RedisLimiter.from_url(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    limiter = ResilientLimiter(closed, probe_seconds=10)
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(50):
        assert (await limiter.acquire([BucketAsk.per_minute("x", 100)])).admitted
    assert loop.time() - started < 0.5
    await limiter.close()
