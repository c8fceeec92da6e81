"""MemoryLimiter details the contract suite cannot pin down without a controllable clock."""

from __future__ import annotations

import pytest
from tests.unit.admission.clock import FakeClock

from relaygate.limits import BucketAsk, BucketSettle, MemoryLimiter


def test_refill_is_exact_with_the_clock() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    bucket = BucketAsk.token_bucket("b", rate=4, burst=2)
    assert limiter.acquire_now([bucket]).admitted
    assert limiter.acquire_now([bucket]).admitted
    refused = limiter.acquire_now([bucket])
    assert refused.retry_after == pytest.approx(0.25)
    clock.advance(0.2)
    assert limiter.acquire_now([bucket]).retry_after == pytest.approx(0.05)
    clock.advance(0.05)
    assert limiter.acquire_now([bucket]).admitted
    clock.advance(100)
    assert limiter.tokens("b", 4, 2) == pytest.approx(2)


def test_held_counts_follow_leases() -> None:
    limiter = MemoryLimiter(FakeClock())
    slots = BucketAsk.concurrency("c", 3)
    leases = [limiter.acquire_now([slots]).lease for _ in range(3)]
    assert limiter.held("c") == 3
    for lease in leases:
        limiter.release_now(lease)
    assert limiter.held("c") == 0
    limiter.release_now(leases[0])
    assert limiter.held("c") == 0


def test_settle_keeps_the_bucket_within_plus_minus_capacity() -> None:
    limiter = MemoryLimiter(FakeClock())
    limiter.settle_now([BucketSettle("t", 1.0, 10.0, 1000)])
    assert limiter.tokens("t", 1.0, 10.0) == 10
    limiter.settle_now([BucketSettle("t", 1.0, 10.0, -1000)])
    assert limiter.tokens("t", 1.0, 10.0) == -10


def test_empty_asks_are_admitted_without_a_lease() -> None:
    admitted = MemoryLimiter().acquire_now([])
    assert admitted.admitted and admitted.lease is None


def test_zero_rate_bucket_never_refills() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    bucket = BucketAsk("z", BucketAsk.per_minute("z", 1).kind, capacity=1, rate=0.0)
    assert limiter.acquire_now([bucket]).admitted
    clock.advance(1e6)
    refused = limiter.acquire_now([bucket])
    assert not refused.admitted and refused.retry_after == float("inf")
