"""MemoryLimiter details the contract suite cannot pin down without a controllable clock."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.admission.clock import FakeClock

from relaygate.limits import BucketAsk, BucketSettle, MemoryLimiter
from relaygate.limits.limiter import Admission, BucketKind, Lease
from relaygate.limits.memory import MAX_REMEMBERED


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


class _Fresh(MemoryLimiter):
    """The same limiter, working every refusal out afresh (the reference for the remembered)."""

    def would_refuse(self, asks: Sequence[BucketAsk]) -> Admission | None:
        return self._refusal(asks, self._clock(), [])


ASK_SETS: list[list[BucketAsk]] = [
    [BucketAsk.token_bucket("r", rate=2, burst=2)],
    [BucketAsk.token_bucket("r", rate=2, burst=2), BucketAsk.per_minute("m", 3)],
    [BucketAsk.concurrency("c", 1), BucketAsk.token_bucket("r", rate=2, burst=2)],
    [BucketAsk.concurrency("c", 1, queueable=True), BucketAsk.concurrency("d", 2, behind="c")],
    [BucketAsk.token_bucket("t", rate=0.5, burst=4, cost=3), BucketAsk.per_minute("m", 3)],
    [BucketAsk("z", BucketKind.RATE, capacity=1, rate=0.0), BucketAsk.concurrency("c", 1)],
]
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("ask"), st.integers(0, len(ASK_SETS) - 1)),
        st.tuples(st.just("acquire"), st.integers(0, len(ASK_SETS) - 1)),
        st.tuples(st.just("release"), st.integers(0, 7)),
        st.tuples(st.just("settle"), st.sampled_from([-2.0, -0.5, 0.5, 3.0])),
        st.tuples(st.just("advance"), st.sampled_from([0.0, 1e-7, 0.01, 0.2, 0.5, 1.7, 40.0])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(OPERATIONS)
def test_a_remembered_refusal_is_the_one_worked_out_afresh(ops: list[tuple[str, Any]]) -> None:
    clock = FakeClock()
    ours, fresh = MemoryLimiter(clock), _Fresh(clock)
    leases: list[tuple[Lease | None, Lease | None]] = []
    for op, arg in ops:
        if op == "ask":
            asks = ASK_SETS[arg]  # the same object each time, as callers pass theirs
            got, expected = ours.would_refuse(asks), fresh.would_refuse(asks)
            if expected is None:
                assert got is None
            else:
                assert got is not None
                assert (got.admitted, got.refused, got.queueable) == (
                    False,
                    expected.refused,
                    expected.queueable,
                )
                assert got.retry_after == pytest.approx(expected.retry_after, rel=1e-9, abs=1e-9)
        elif op == "acquire":
            a, b = ours.acquire_now(ASK_SETS[arg]), fresh.acquire_now(ASK_SETS[arg])
            assert a.admitted == b.admitted
            leases.append((a.lease, b.lease))
        elif op == "release" and leases:
            a_lease, b_lease = leases.pop(arg % len(leases))
            ours.release_now(a_lease)
            fresh.release_now(b_lease)
        elif op == "settle":
            for limiter in (ours, fresh):
                limiter.settle_now([BucketSettle("r", 2.0, 2.0, arg)])
        elif op == "advance":
            clock.advance(arg)


def test_a_refusal_is_remembered_for_the_same_asks_only_while_nothing_else_changes() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    slots = [BucketAsk.concurrency("c", 1)]
    lease = limiter.acquire_now(slots).lease
    refused = limiter.would_refuse(slots)
    assert refused is not None and refused.retry_after == 1.0
    assert limiter.would_refuse(slots) is refused  # nothing moves a concurrency refusal
    assert limiter.would_refuse(list(slots)) is not refused  # another asks object
    limiter.release_now(lease)
    assert limiter.would_refuse(slots) is None


def test_remembered_refusals_are_bounded() -> None:
    limiter = MemoryLimiter(FakeClock())
    limiter.acquire_now([BucketAsk.concurrency("c", 1)])
    kept = [[BucketAsk.concurrency("c", 1)] for _ in range(3 * MAX_REMEMBERED)]
    for asks in kept:
        assert limiter.would_refuse(asks) is not None
    assert len(limiter._refused) <= MAX_REMEMBERED
    fitting = [[BucketAsk.concurrency("d", 1)] for _ in range(3 * MAX_REMEMBERED)]
    for asks in fitting:
        assert limiter.would_refuse(asks) is None
    assert len(limiter._fitting) <= MAX_REMEMBERED


def test_a_remembered_refusal_moves_with_the_clock_until_its_bucket_fits() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    rate = [BucketAsk.token_bucket("r", rate=2, burst=2)]
    limiter.acquire_now(rate)
    limiter.acquire_now(rate)
    first = limiter.would_refuse(rate)
    assert first is not None and first.retry_after == pytest.approx(0.5)
    clock.advance(0.3)
    later = limiter.would_refuse(rate)
    assert later is not None and later.retry_after == pytest.approx(0.2)
    clock.advance(0.2)
    assert limiter.would_refuse(rate) is None


def test_a_remembered_refusal_keeps_a_longer_concurrency_hint() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    both = [BucketAsk.concurrency("c", 1), BucketAsk.token_bucket("r", rate=2, burst=1)]
    assert limiter.acquire_now(both).admitted
    refused = limiter.would_refuse(both)
    assert refused is not None and refused.retry_after == 1.0 and refused.refused == "c"
    clock.advance(0.3)
    still = limiter.would_refuse(both)
    assert still is not None and still.retry_after == 1.0  # the rate bucket's wait is 0.2


def test_a_settle_or_a_take_ends_a_remembered_refusal() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    rate = [BucketAsk.token_bucket("r", rate=2, burst=1)]
    limiter.acquire_now(rate)
    assert limiter.would_refuse(rate) is not None
    limiter.settle_now([BucketSettle("r", 2.0, 1.0, 1.0)])  # a refund: the token is back
    assert limiter.would_refuse(rate) is None
    slow = BucketAsk.token_bucket("s", rate=0.5, burst=1)
    both = [BucketAsk.concurrency("c", 1), slow]
    assert limiter.acquire_now([both[0]]).admitted
    refused = limiter.would_refuse(both)
    assert refused is not None and refused.retry_after == 1.0
    assert limiter.acquire_now([slow]).admitted  # another request empties the rate bucket
    longer = limiter.would_refuse(both)
    assert longer is not None and longer.retry_after == pytest.approx(2.0)


def test_asks_that_fit_are_remembered_until_a_take() -> None:
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    rate = [BucketAsk.token_bucket("r", rate=2, burst=1)]
    assert limiter.would_refuse(rate) is None
    assert limiter.would_refuse(rate) is None  # remembered: nothing changed
    assert limiter.acquire_now([BucketAsk.token_bucket("r", rate=2, burst=1)]).admitted
    refused = limiter.would_refuse(rate)
    assert refused is not None and refused.retry_after == pytest.approx(0.5)


def test_a_lower_capacity_kept_by_a_refused_ask_binds_an_answer_asked_before() -> None:
    # A refused ask takes nothing (no version bump) but may lower the bucket's kept capacity:
    # a "fits" remembered before it must not outlive it.
    clock = FakeClock()
    limiter = MemoryLimiter(clock)
    assert limiter.acquire_now([BucketAsk.concurrency("x", 3)]).admitted  # one held
    wide = [BucketAsk.concurrency("x", 3, keep_lowest=1.0)]
    assert limiter.would_refuse(wide) is None
    assert not limiter.acquire_now([BucketAsk.concurrency("x", 1, keep_lowest=1.0)]).admitted
    assert limiter.would_refuse(wide) is not None  # at most 1 now, and 1 is held
    clock.advance(1.5)
    assert limiter.would_refuse(wide) is None  # the lower capacity is no longer kept
