"""The JobStore contract: SQLite and PostgreSQL must behave the same."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from relaygate.jobs import Failure, JobStore, NewJob, Success, Usage, create_job_store

T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
LEASE = timedelta(seconds=60)


@pytest.fixture
async def jobs(key_store_url: str) -> AsyncIterator[JobStore]:
    store = create_job_store(key_store_url)
    await store.open()
    yield store
    await store.close()


def event(event_id: str = "ev-1", *, pipeline: str = "orders", key: str = "team-a",
          max_attempts: int = 3, callback: str | None = None) -> NewJob:  # fmt: skip
    return NewJob(pipeline, event_id, key, {"content": "2 apples"}, max_attempts, callback)


async def test_an_event_is_stored_once_by_pipeline_and_event_id(jobs: JobStore) -> None:
    first, created = await jobs.insert(event(), T0)
    again, created_again = await jobs.insert(event(), T0 + timedelta(seconds=1))
    other, other_created = await jobs.insert(event(pipeline="invoices"), T0)
    assert (created, created_again, other_created) == (True, False, True)
    assert again.id == first.id != other.id
    assert (first.status, first.attempts, first.data) == ("queued", 0, {"content": "2 apples"})
    assert await jobs.get(first.id) == first
    assert await jobs.get("job_missing") is None


async def test_concurrent_duplicates_make_one_job(jobs: JobStore) -> None:
    results = await asyncio.gather(*(jobs.insert(event("ev-same"), T0) for _ in range(8)))
    assert len({job.id for job, _ in results}) == 1
    assert sum(created for _, created in results) == 1


async def test_a_claim_leases_due_jobs_once(jobs: JobStore) -> None:
    for i in range(3):
        await jobs.insert(event(f"ev-{i}"), T0)
    await jobs.insert(event("ev-other", pipeline="invoices"), T0)
    first = await jobs.claim("orders", 2, T0, T0 + LEASE)
    second = await jobs.claim("orders", 5, T0, T0 + LEASE)
    assert [len(first), len(second)] == [2, 1]
    assert {j.event_id for j in first + second} == {"ev-0", "ev-1", "ev-2"}
    job = first[0]
    assert (job.status, job.attempts, job.started_at) == ("running", 1, T0)
    assert job.lease_token and job.lease_expires_at == T0 + LEASE
    assert await jobs.claim("orders", 5, T0 + timedelta(seconds=30), T0 + LEASE) == []


async def test_concurrent_claims_never_share_a_job(jobs: JobStore) -> None:
    for i in range(20):
        await jobs.insert(event(f"ev-{i}"), T0)
    batches = await asyncio.gather(*(jobs.claim("orders", 3, T0, T0 + LEASE) for _ in range(10)))
    ids = [job.id for batch in batches for job in batch]
    assert len(ids) == len(set(ids)) == 20


async def test_an_expired_lease_is_claimed_again_and_the_late_finisher_is_fenced(
    jobs: JobStore,
) -> None:
    await jobs.insert(event(), T0)
    (stale,) = await jobs.claim("orders", 1, T0, T0 + LEASE)
    assert stale.lease_token
    assert await jobs.renew(stale.id, stale.lease_token, T0 + 2 * LEASE)
    assert await jobs.claim("orders", 1, T0 + LEASE + timedelta(seconds=1), T0 + 3 * LEASE) == []
    later = T0 + 2 * LEASE + timedelta(seconds=1)
    (fresh,) = await jobs.claim("orders", 1, later, later + LEASE)
    assert fresh.id == stale.id and fresh.attempts == 2 and fresh.lease_token != stale.lease_token
    assert fresh.errors == ("attempt 1: the worker stopped before it finished (its lease expired)",)
    assert not await jobs.renew(stale.id, stale.lease_token, later + 2 * LEASE)
    usage = Usage(0.5, 10, 5)
    assert (
        await jobs.succeed(stale.id, stale.lease_token, {"late": 1}, "first_try", usage, later)
        is None
    )
    assert await jobs.fail(stale.id, stale.lease_token, "late", usage, later, later) is None
    assert fresh.lease_token
    done = await jobs.succeed(fresh.id, fresh.lease_token, {"ok": 1}, "after_reask", usage, later)
    assert done is not None
    assert (done.status, done.result, done.validity, done.error) == (
        "succeeded",
        {"ok": 1},
        "after_reask",
        None,
    )
    assert (done.cost_usd, done.input_tokens, done.output_tokens, done.finished_at) == (
        0.5,
        10,
        5,
        later,
    )
    assert (
        await jobs.succeed(fresh.id, fresh.lease_token, {"twice": 1}, "first_try", usage, later)
        is None
    )
    assert (await jobs.get(fresh.id)).result == {"ok": 1}  # type: ignore[union-attr]


async def test_failures_retry_then_the_job_is_dead_with_every_error(jobs: JobStore) -> None:
    job, _ = await jobs.insert(event(max_attempts=2, callback="http://hook"), T0)
    (running,) = await jobs.claim("orders", 1, T0, T0 + LEASE)
    assert running.lease_token
    retry_at = T0 + timedelta(seconds=5)
    failed = await jobs.fail(
        job.id, running.lease_token, "bad JSON", Usage(0.1, 3, 4), T0, retry_at
    )
    assert failed is not None
    assert (failed.status, failed.error, failed.run_after, failed.finished_at) == (
        "failed",
        "bad JSON",
        retry_at,
        None,
    )
    assert failed.callback_status is None
    assert await jobs.claim("orders", 1, T0 + timedelta(seconds=4), T0 + LEASE) == []
    (second,) = await jobs.claim("orders", 1, retry_at, retry_at + LEASE)
    assert second.lease_token and second.attempts == 2
    dead = await jobs.fail(
        job.id, second.lease_token, "timeout", Usage(0.2, 1, 1), retry_at, retry_at
    )
    assert dead is not None
    assert (dead.status, dead.finished_at, dead.callback_status) == ("dead", retry_at, "pending")
    assert dead.errors == ("attempt 1: bad JSON", "attempt 2: timeout")
    assert dead.cost_usd == pytest.approx(0.3) and dead.input_tokens == 4
    assert await jobs.claim("orders", 1, retry_at + LEASE, retry_at + 2 * LEASE) == []
    assert [j.id for j in await jobs.pending_callbacks(10)] == [job.id]
    await jobs.record_callback(job.id, "delivered", 2, None)
    assert await jobs.pending_callbacks(10) == []
    requeued = await jobs.requeue(job.id, retry_at)
    assert requeued is not None and (requeued.status, requeued.attempts) == ("queued", 0)
    assert requeued.errors == dead.errors
    assert await jobs.requeue(job.id, retry_at) is None  # queued is not dead or failed
    assert len(await jobs.claim("orders", 1, retry_at, retry_at + LEASE)) == 1


async def test_a_worker_dying_on_the_last_attempt_leaves_the_job_dead(jobs: JobStore) -> None:
    job, _ = await jobs.insert(event(max_attempts=1), T0)
    await jobs.claim("orders", 1, T0, T0 + LEASE)
    later = T0 + LEASE + timedelta(seconds=1)
    assert await jobs.claim("orders", 1, later, later + LEASE) == []
    dead = await jobs.get(job.id)
    assert dead is not None and dead.status == "dead" and dead.finished_at == later
    assert dead.errors == ("attempt 1: the worker stopped before it finished (its lease expired)",)


async def test_lists_filter_by_status_and_key_and_page_by_cursor(jobs: JobStore) -> None:
    ids = [
        (await jobs.insert(event(f"ev-{i}", key="a" if i % 2 else "b"), T0))[0].id for i in range(5)
    ]
    await jobs.claim("orders", 1, T0, T0 + LEASE)  # the oldest runs
    first = await jobs.list_jobs("orders", limit=2)
    assert [j.id for j in first.jobs] == [ids[4], ids[3]] and first.next_cursor == ids[3]
    second = await jobs.list_jobs("orders", limit=2, cursor=first.next_cursor)
    assert [j.id for j in second.jobs] == [ids[2], ids[1]]
    last = await jobs.list_jobs("orders", limit=2, cursor=second.next_cursor)
    assert [j.id for j in last.jobs] == [ids[0]] and last.next_cursor is None
    queued_a = await jobs.list_jobs("orders", status="queued", key_name="a")
    assert [j.id for j in queued_a.jobs] == [ids[3], ids[1]]
    running = await jobs.list_jobs("orders", status="running")
    assert [j.id for j in running.jobs] == [ids[0]]
    assert await jobs.count_by_status() == {("orders", "queued"): 4, ("orders", "running"): 1}


async def test_a_released_job_is_queued_again_without_counting_the_stopped_attempt(
    jobs: JobStore,
) -> None:
    job, _ = await jobs.insert(event(), T0)
    (running,) = await jobs.claim("orders", 1, T0, T0 + LEASE)
    assert running.lease_token
    assert await jobs.release(job.id, running.lease_token, T0)
    assert not await jobs.release(job.id, running.lease_token, T0)  # no longer held
    (again,) = await jobs.claim("orders", 1, T0, T0 + LEASE)
    assert (again.attempts, again.errors) == (1, ())


async def test_insert_many_answers_in_order_and_creates_a_repeated_event_once(
    jobs: JobStore,
) -> None:
    earlier, _ = await jobs.insert(event("ev-old"), T0)
    batch = [event("ev-a"), event("ev-old"), event("ev-a"), event("ev-a", pipeline="invoices")]
    answers = await jobs.insert_many(batch, T0 + timedelta(seconds=1))
    assert [created for _, created in answers] == [True, False, False, True]
    assert [job.event_id for job, _ in answers] == ["ev-a", "ev-old", "ev-a", "ev-a"]
    assert answers[1][0] == earlier and answers[0][0].id == answers[2][0].id
    assert answers[3][0].pipeline == "invoices" and answers[3][0].id != answers[0][0].id
    assert await jobs.get(answers[0][0].id) == answers[0][0]
    assert await jobs.insert_many([], T0) == []


async def test_concurrent_batches_sharing_events_make_one_job_each(jobs: JobStore) -> None:
    names = [f"ev-{i}" for i in range(6)]
    batches = [[event(n) for n in (names if k % 2 else names[::-1])] for k in range(4)]
    results = await asyncio.gather(*(jobs.insert_many(b, T0) for b in batches))
    by_event: dict[str, set[str]] = {}
    for answers in results:
        for job, _ in answers:
            by_event.setdefault(job.event_id, set()).add(job.id)
    assert all(len(ids) == 1 for ids in by_event.values()) and len(by_event) == 6
    assert sum(created for answers in results for _, created in answers) == 6


async def test_finish_many_commits_each_outcome_under_its_own_lease(jobs: JobStore) -> None:
    for i in range(4):
        await jobs.insert(event(f"ev-{i}", max_attempts=1 if i == 2 else 3), T0)
    claimed = {j.event_id: j for j in await jobs.claim("orders", 4, T0, T0 + LEASE)}
    done, retried, buried, stale = (claimed[f"ev-{i}"] for i in range(4))
    usage = Usage(0.5, 10, 20)
    later = T0 + timedelta(seconds=5)
    retry_at = T0 + timedelta(seconds=30)
    outcomes = [
        Success(done.id, str(done.lease_token), {"order_id": "A-1"}, "first_try", usage),
        Failure(retried.id, str(retried.lease_token), "no JSON", usage, retry_at),
        Failure(buried.id, str(buried.lease_token), "no JSON", usage, retry_at),
        Success(stale.id, "not-the-token", {"order_id": "B-2"}, "first_try", usage),
    ]
    finished = await jobs.finish_many(outcomes, later)
    assert [None if j is None else j.status for j in finished] == [
        "succeeded", "failed", "dead", None,
    ]  # fmt: skip
    assert finished[0] is not None and finished[0].result == {"order_id": "A-1"}
    assert (finished[0].cost_usd, finished[0].input_tokens, finished[0].finished_at) == (
        0.5, 10, later,
    )  # fmt: skip
    assert finished[1] is not None and finished[1].run_after == retry_at
    assert finished[1].errors == ("attempt 1: no JSON",)
    assert finished[2] is not None and finished[2].finished_at == later
    still = await jobs.get(stale.id)
    assert still is not None and (still.status, still.result) == ("running", None)
    # A second commit of the same attempt finds no lease: a result is committed once.
    assert await jobs.finish_many(outcomes[:1], later) == [None]
    assert await jobs.finish_many([], later) == []
