"""The RateLimiter contract, run against every implementation: memory and Redis.

Then what only the shared limiter must do: leases that outlive a killed process expire, live ones
are renewed, and four OS processes hammering one Redis bucket get the limit, not four times it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from tests.contract.limiter_worker import BUCKET

from relaygate.core.redis_client import POOL_CONNECTIONS
from relaygate.limits import BucketAsk, BucketSettle, MemoryLimiter, RateLimiter, RedisLimiter

WORKER = Path(__file__).with_name("limiter_worker.py")
MARKER = "run"  # gone when the database was emptied


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter_url(request: pytest.FixtureRequest) -> str:
    """``memory``, or the URL of an emptied Redis database."""
    if request.param == "memory":
        return "memory"
    url: str = request.getfixturevalue("redis_url")
    return url


@pytest.fixture
async def limiter(limiter_url: str) -> AsyncIterator[RateLimiter]:
    if limiter_url == "memory":
        yield MemoryLimiter()
        return
    shared = RedisLimiter.from_url(limiter_url, timeout=2.0, prefix=unique_prefix())
    await shared.start()
    yield shared
    await shared.close()


def unique_prefix() -> str:
    """Keys of this test only: a concurrent run of the suite on the same Redis cannot collide."""
    return f"test:{{{uuid.uuid4().hex}}}:"


async def admitted_count(limiter: RateLimiter, asks: list[BucketAsk], tries: int) -> int:
    return sum([(await limiter.acquire(asks)).admitted for _ in range(tries)])


async def test_burst_is_admitted_then_refused_with_retry_after(limiter: RateLimiter) -> None:
    bucket = BucketAsk.token_bucket("key:rps", rate=10, burst=3)
    assert await admitted_count(limiter, [bucket], 3) == 3
    refused = await limiter.acquire([bucket])
    assert not refused.admitted
    assert refused.refused == "key:rps"
    assert not refused.queueable
    assert 0 < refused.retry_after <= 0.1 + 1e-6


async def test_bucket_refills_at_its_rate(limiter: RateLimiter) -> None:
    bucket = BucketAsk.token_bucket("fast", rate=20, burst=1)
    assert (await limiter.acquire([bucket])).admitted
    assert not (await limiter.acquire([bucket])).admitted
    await asyncio.sleep(0.06)  # the refill (one token per 0.05 s) is the behaviour under test
    assert (await limiter.acquire([bucket])).admitted
    assert not (await limiter.acquire([bucket])).admitted


async def test_acquire_is_all_or_nothing(limiter: RateLimiter) -> None:
    roomy = BucketAsk.per_minute("roomy", 5)
    tight = BucketAsk.per_minute("tight", 1)
    assert (await limiter.acquire([tight])).admitted
    for _ in range(3):
        refused = await limiter.acquire([roomy, tight])
        assert not refused.admitted and refused.refused == "tight"
    assert await admitted_count(limiter, [roomy], 6) == 5


async def test_concurrency_holds_a_lease_until_released(limiter: RateLimiter) -> None:
    slots = BucketAsk.concurrency("dep:conc", 2, queueable=True)
    first = await limiter.acquire([slots])
    second = await limiter.acquire([slots])
    assert first.admitted and second.admitted
    assert first.lease is not None and first.lease.names == ("dep:conc",)
    third = await limiter.acquire([slots])
    assert not third.admitted and third.queueable and third.refused == "dep:conc"
    await limiter.release(first.lease)
    await limiter.release(first.lease)  # twice: harmless, frees nothing more
    assert (await limiter.acquire([slots])).admitted
    assert not (await limiter.acquire([slots])).admitted


async def test_claims_count_as_held_for_an_ask_behind_them(limiter: RateLimiter) -> None:
    claims = BucketAsk.concurrency("dep:conc:claims", 10)
    plain = BucketAsk.concurrency("dep:conc", 3, queueable=True)
    behind = BucketAsk.concurrency("dep:conc", 3, queueable=True, behind="dep:conc:claims")
    rate = BucketAsk.per_minute("dep:rpm", 100, queueable=True)
    held = await limiter.acquire([plain])
    first, second = await limiter.acquire([claims]), await limiter.acquire([claims])
    assert held.admitted and first.admitted and second.admitted
    # 1 held + 2 claims fill the 3 slots for an ask behind the claims, not for the claimants
    refused = await limiter.acquire([rate, behind])
    assert not refused.admitted and refused.queueable and refused.refused == "dep:conc"
    assert refused.retry_after > 0
    claimant = await limiter.acquire([plain])
    assert claimant.admitted
    await limiter.release(first.lease)
    await limiter.release(second.lease)
    # claims gone: 2 held of 3, one more behind them fits, and its lease is of dep:conc only
    admitted = await limiter.acquire([rate, behind])
    assert admitted.admitted and admitted.lease is not None
    assert admitted.lease.names == ("dep:conc",)
    assert not (await limiter.acquire([plain])).admitted


async def test_the_lowest_capacity_asked_lately_binds_every_ask(limiter: RateLimiter) -> None:
    """Each process sizes a shared bucket from its own estimate: the lowest size asked within
    ``keep_lowest`` binds the others' asks too, whether that ask was admitted or not."""
    wide = BucketAsk.concurrency("dep:open", 5, queueable=True, keep_lowest=0.1)
    narrow = BucketAsk.concurrency("dep:open", 2, queueable=True, keep_lowest=0.1)
    held = [await limiter.acquire([narrow]), await limiter.acquire([wide])]
    assert all(a.admitted for a in held)
    refused = await limiter.acquire([wide])  # 2 held: the narrow ask's 2 binds the wide one
    assert not refused.admitted and refused.queueable and refused.refused == "dep:open"
    await asyncio.sleep(0.15)  # the lapse of the narrow ask is the behaviour under test
    held += [await limiter.acquire([wide]), await limiter.acquire([wide])]
    assert all(a.admitted for a in held)  # 4 of 5
    assert not (await limiter.acquire([narrow])).admitted  # refused, and binding from now on
    assert not (await limiter.acquire([wide])).admitted
    # An ask that keeps no lowest capacity is not bound by the others'
    assert (await limiter.acquire([BucketAsk.concurrency("dep:open", 5)])).admitted
    for admission in held:
        await limiter.release(admission.lease)
    assert (await limiter.acquire([wide])).admitted  # 1 held now, within the 2 still binding


async def test_rate_only_admission_holds_no_lease(limiter: RateLimiter) -> None:
    admitted = await limiter.acquire([BucketAsk.per_minute("rpm", 10)])
    assert admitted.admitted and admitted.lease is None
    await limiter.release(None)


async def test_refused_request_takes_no_slot(limiter: RateLimiter) -> None:
    slots = BucketAsk.concurrency("c", 1)
    empty = BucketAsk.token_bucket("r", rate=0.01, burst=1)
    assert (await limiter.acquire([empty])).admitted
    assert not (await limiter.acquire([slots, empty])).admitted
    assert (await limiter.acquire([slots])).admitted


async def test_queueable_only_when_every_refusing_bucket_is(limiter: RateLimiter) -> None:
    key = BucketAsk.per_minute("k", 1)
    dep = BucketAsk.concurrency("d", 1, queueable=True)
    held = await limiter.acquire([dep])
    only_dep = await limiter.acquire([key, dep])
    assert not only_dep.admitted and only_dep.queueable and only_dep.refused == "d"
    assert (await limiter.acquire([key])).admitted
    both = await limiter.acquire([key, dep])
    assert not both.admitted and not both.queueable and both.refused == "k"
    await limiter.release(held.lease)


async def test_retry_after_is_the_longest_wait(limiter: RateLimiter) -> None:
    quick = BucketAsk.token_bucket("quick", rate=100, burst=1)
    slow = BucketAsk.token_bucket("slow", rate=1, burst=1)
    assert (await limiter.acquire([quick, slow])).admitted
    refused = await limiter.acquire([quick, slow])
    assert refused.refused == "quick"
    assert 0.9 <= refused.retry_after <= 1.0 + 1e-6


async def test_tpm_reservation_is_trued_up(limiter: RateLimiter) -> None:
    reserve = BucketAsk.per_minute("k:tpm", 1000, cost=600)
    assert (await limiter.acquire([reserve])).admitted
    assert not (await limiter.acquire([reserve])).admitted
    await limiter.settle([BucketSettle.true_up(reserve, actual=100)])
    assert (await limiter.acquire([reserve])).admitted


async def test_true_up_beyond_the_reservation_is_debt(limiter: RateLimiter) -> None:
    reserve = BucketAsk.per_minute("k:tpm", 1000, cost=100)
    assert (await limiter.acquire([reserve])).admitted
    await limiter.settle([BucketSettle.true_up(reserve, actual=1000)])
    refused = await limiter.acquire([reserve])
    assert not refused.admitted
    assert refused.retry_after == pytest.approx(100 / (1000 / 60), rel=0.05)


async def test_debt_never_exceeds_one_bucket(limiter: RateLimiter) -> None:
    reserve = BucketAsk.per_minute("k:tpm", 600, cost=1)
    assert (await limiter.acquire([reserve])).admitted
    await limiter.settle([BucketSettle("k:tpm", 10.0, 600.0, -100_000)])
    refused = await limiter.acquire([reserve])
    assert refused.retry_after == pytest.approx(601 / 10, rel=0.01)


async def test_cost_above_capacity_passes_once_the_bucket_is_full(limiter: RateLimiter) -> None:
    huge = BucketAsk.per_minute("k:tpm", 100, cost=5000)
    assert (await limiter.acquire([huge])).admitted
    assert not (await limiter.acquire([huge])).admitted


async def test_release_also_settles(limiter: RateLimiter) -> None:
    slots = BucketAsk.concurrency("c", 1)
    tokens = BucketAsk.per_minute("t", 100, cost=100)
    admitted = await limiter.acquire([slots, tokens])
    assert admitted.admitted
    await limiter.release(admitted.lease, [BucketSettle.true_up(tokens, actual=0)])
    assert (await limiter.acquire([slots, tokens])).admitted


async def test_concurrent_acquires_never_exceed_the_limit(limiter: RateLimiter) -> None:
    slots = BucketAsk.concurrency("c", 7)
    rate = BucketAsk.per_minute("r", 30)
    results = await asyncio.gather(*(limiter.acquire([slots, rate]) for _ in range(60)))
    assert sum(r.admitted for r in results) == 7
    for result in results:
        await limiter.release(result.lease)
    results = await asyncio.gather(*(limiter.acquire([rate]) for _ in range(60)))
    assert sum(r.admitted for r in results) == 23


async def test_new_limits_apply_on_the_next_ask(limiter: RateLimiter) -> None:
    assert await admitted_count(limiter, [BucketAsk.per_minute("k", 10)], 2) == 2
    # The bucket now holds at most the new capacity.
    assert await admitted_count(limiter, [BucketAsk.per_minute("k", 3)], 5) == 3


@pytest.mark.redis
async def test_lease_of_a_dead_process_expires(redis_url: str) -> None:
    prefix = unique_prefix()
    dead = RedisLimiter.from_url(redis_url, lease_ttl=0.3, prefix=prefix)
    alive = RedisLimiter.from_url(redis_url, lease_ttl=0.3, prefix=prefix)
    slots = BucketAsk.concurrency("c", 1)
    try:
        assert (await dead.acquire([slots])).admitted
        assert not (await alive.acquire([slots])).admitted
        await asyncio.sleep(0.45)  # ``dead`` never renews: it has no renewal task running
        assert (await alive.acquire([slots])).admitted
    finally:
        await dead.close()
        await alive.close()


@pytest.mark.redis
async def test_held_leases_are_renewed(redis_url: str) -> None:
    prefix = unique_prefix()
    holder = RedisLimiter.from_url(redis_url, lease_ttl=0.3, prefix=prefix)
    other = RedisLimiter.from_url(redis_url, lease_ttl=0.3, prefix=prefix)
    slots = BucketAsk.concurrency("c", 1)
    await holder.start()
    try:
        held = await holder.acquire([slots])
        assert held.admitted and holder.held_leases == 1
        await asyncio.sleep(0.8)  # well past the 0.3 s TTL: only renewal keeps the lease
        assert not (await other.acquire([slots])).admitted
        await holder.release(held.lease)
        assert holder.held_leases == 0
        assert (await other.acquire([slots])).admitted
    finally:
        await holder.close()
        await other.close()


@pytest.mark.redis
async def test_more_calls_in_flight_than_pooled_connections_wait_instead_of_failing(
    redis_url: str,
) -> None:
    # One saturated worker has an acquire per request in flight plus a releaser batch: beyond
    # the pool's connections they must queue for one, not fail (which switched the process to
    # local limits until the next probe).
    limiter = RedisLimiter.from_url(redis_url, timeout=5.0, prefix=unique_prefix())
    slots = BucketAsk.concurrency("c", 10_000)
    calls = 3 * POOL_CONNECTIONS
    try:
        held = await asyncio.gather(*(limiter.acquire([slots]) for _ in range(calls)))
        assert all(admission.admitted for admission in held)
        assert limiter.held_leases == calls
        await asyncio.gather(*(limiter.release(admission.lease) for admission in held))
        assert limiter.held_leases == 0
    finally:
        await limiter.close()


@pytest.mark.redis
async def test_calls_of_one_turn_share_one_round_trip_and_are_judged_one_by_one(
    redis_url: str,
) -> None:
    limiter = RedisLimiter.from_url(redis_url, timeout=5.0, prefix=unique_prefix())
    slots = BucketAsk.concurrency("c", 5)
    try:
        before = limiter.round_trips
        held = await asyncio.gather(*(limiter.acquire([slots]) for _ in range(20)))
        assert limiter.round_trips == before + 1
        assert [admission.admitted for admission in held] == [True] * 5 + [False] * 15
        await asyncio.gather(*(limiter.release(admission.lease) for admission in held))
        assert limiter.round_trips == before + 2
        assert (await limiter.acquire([slots])).admitted
    finally:
        await limiter.close()


@pytest.mark.redis
async def test_a_script_redis_no_longer_holds_is_loaded_again(redis_url: str) -> None:
    limiter = RedisLimiter.from_url(redis_url, timeout=5.0, prefix=unique_prefix())
    # As after a Redis restart: the script's digest names nothing on the server.
    limiter._acquire.sha = "0" * 40
    bucket = BucketAsk.per_minute("r", 3)
    try:
        answers = await asyncio.gather(*(limiter.acquire([bucket]) for _ in range(5)))
        assert [admission.admitted for admission in answers] == [True] * 3 + [False] * 2
    finally:
        await limiter.close()


async def bucket_state(url: str, prefix: str) -> tuple[float, float, bool]:
    """The shared bucket's tokens left, the Redis server's time (ms) of its last admission
    (acquire.lua's hash: ``t`` and ``u``), and whether the run's marker is still there."""
    client = aioredis.Redis.from_url(url)
    try:
        tokens, updated = await client.hmget(prefix + BUCKET, ["t", "u"])
        marked = bool(await client.exists(prefix + MARKER))
    finally:
        await client.aclose()
    assert tokens is not None and updated is not None, "no bucket"
    return float(tokens), float(updated), marked


async def drain(url: str, prefix: str, rate: float, burst: float) -> tuple[float, float, bool]:
    """Set the run's marker and take the whole burst at once; the bucket's state right after."""
    client = aioredis.Redis.from_url(url)
    try:
        await client.set(prefix + MARKER, 1)
    finally:
        await client.aclose()
    limiter = RedisLimiter.from_url(url, timeout=2.0, prefix=prefix)
    try:
        everything = BucketAsk.token_bucket(BUCKET, rate, burst, cost=burst)
        assert (await limiter.acquire([everything])).admitted
    finally:
        await limiter.close()
    return await bucket_state(url, prefix)


def share_one_limit(url: str, rate: float, burst: float, seconds: float) -> tuple[list[int], float]:
    """Four worker processes hammer one bucket: what each was admitted, and the tokens the bucket
    gave from the drain to the last admission by Redis's clock (``-1`` when another test
    session emptied the database under the run: every test of every worktree on this machine
    flushes database 15 as it starts and ends, and the bucket then starts full again)."""
    prefix = unique_prefix()
    args = [url, prefix, str(rate), str(burst), str(seconds)]
    workers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for worker in workers:  # every interpreter has imported and connected
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    start_tokens, start_ms, _ = asyncio.run(drain(url, prefix, rate, burst))
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    counts = []
    for worker in workers:
        out, _ = worker.communicate(timeout=60)
        assert worker.returncode == 0, out
        admitted, attempts = out.split()
        assert int(attempts) > int(admitted)  # every process really hammered past the limit
        counts.append(int(admitted))
    end_tokens, end_ms, kept = asyncio.run(bucket_state(url, prefix))
    if not kept:
        return counts, -1.0
    # Timed by the clock that refills the bucket, Redis's own, from the drain to the last
    # admission: how late any process was scheduled, before or after, does not enter.
    window = (end_ms - start_ms) / 1000
    assert window > seconds * 0.8  # admissions went on for the whole run
    return counts, start_tokens + rate * window - end_tokens


@pytest.mark.redis
def test_four_processes_share_one_limit_within_one_percent(redis_url: str) -> None:
    # A second's worth of burst, drained before the workers start: the bucket then never sits
    # full (a token refilled beyond the burst is lost) unless no process asks for a whole second.
    rate, burst, seconds = 100, 100, 3.0
    for _ in range(5):  # a run another session's flush cut into says nothing: run it again
        counts, expected = share_one_limit(redis_url, rate, burst, seconds)
        if expected >= 0:
            break
    else:
        raise AssertionError("database 15 was emptied under each of 5 runs")
    assert all(count > 0 for count in counts)
    assert abs(sum(counts) - expected) <= 0.01 * expected, (counts, expected)


@pytest.mark.redis
async def test_a_lease_no_longer_renewed_is_still_given_back(redis_url: str) -> None:
    # After an outage the limiter stops renewing its leases; their release, sent when Redis
    # answers again, must still free the slots instead of leaving them to the TTL.
    limiter = RedisLimiter.from_url(redis_url, timeout=5.0, prefix=unique_prefix())
    slots = [BucketAsk.concurrency("c", 1)]
    try:
        held = await limiter.acquire(slots)
        assert held.lease is not None
        limiter.forget_leases()
        assert not (await limiter.acquire(slots)).admitted
        await limiter.release(held.lease)
        assert (await limiter.acquire(slots)).admitted
    finally:
        await limiter.close()
