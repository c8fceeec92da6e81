"""``JobStore`` on PostgreSQL: jobs shared by worker processes on several machines."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from relaygate.jobs import postgres_queries as q
from relaygate.jobs.records import (
    AttemptOutcome,
    CallbackStatus,
    Failure,
    Job,
    JobPage,
    JobStatus,
    NewJob,
    Success,
    Usage,
    answers_in_order,
    job_from_row,
    new_job_id,
    page,
)
from relaygate.store.lifecycle import DatabaseOwner
from relaygate.store.postgres.connection import PostgresDatabase


class PostgresJobStore(DatabaseOwner[PostgresDatabase]):
    """Claims take due rows with ``FOR UPDATE SKIP LOCKED``: workers never wait on each other
    and never claim one job twice."""

    def __init__(self, dsn: str, *, max_size: int = 5) -> None:
        self._db = PostgresDatabase(dsn, max_size=max_size)

    async def insert(self, job: NewJob, now: datetime) -> tuple[Job, bool]:
        return (await self.insert_many([job], now))[0]

    async def insert_many(self, jobs: Sequence[NewJob], now: datetime) -> list[tuple[Job, bool]]:
        if not jobs:
            return []
        ids = [new_job_id() for _ in jobs]
        ordered = sorted(zip(ids, jobs, strict=True), key=lambda pair: _event_key(pair[1]))
        rows_in = [(job_id, *_insert_values(job)) for job_id, job in ordered]
        columns = [list(column) for column in zip(*rows_in, strict=True)]
        async with self._db.connection() as conn:
            created = await conn.fetch(q.INSERT_MANY, *columns, now)
            found = {_event_key(job): job for job in map(_job, created)}
            missing = list(dict.fromkeys(k for k in map(_event_key, jobs) if k not in found))
            if missing:
                # A separate statement: it sees rows a concurrent insert committed meanwhile.
                rows = await conn.fetch(
                    q.SELECT_BY_EVENTS, [p for p, _ in missing], [e for _, e in missing]
                )
                found.update((_event_key(job), job) for job in map(_job, rows))
        return answers_in_order(jobs, ids, found)

    async def get(self, job_id: str) -> Job | None:
        return await self._fetch_one(q.SELECT_BY_ID, (job_id,))

    async def claim(
        self, pipeline: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Job]:
        async with self._db.transaction() as conn:
            await conn.execute(q.BURY_EXPIRED, now, pipeline)
            rows = await conn.fetch(q.CLAIM, pipeline, now, lease_until, limit)
        return [_job(row) for row in rows]

    async def renew(self, job_id: str, token: str, lease_until: datetime) -> bool:
        async with self._db.connection() as conn:
            status: str = await conn.execute(q.RENEW, lease_until, job_id, token)
        return status.endswith(" 1")

    async def succeed(
        self, job_id: str, token: str, result: Any, validity: str, usage: Usage, now: datetime
    ) -> Job | None:
        return (await self.finish_many([Success(job_id, token, result, validity, usage)], now))[0]

    async def fail(
        self, job_id: str, token: str, error: str, usage: Usage, now: datetime, retry_at: datetime
    ) -> Job | None:
        return (await self.finish_many([Failure(job_id, token, error, usage, retry_at)], now))[0]

    async def finish_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[Job | None]:
        successes = [o for o in outcomes if isinstance(o, Success)]
        failures = [o for o in outcomes if isinstance(o, Failure)]
        rows: list[Any] = []
        async with self._db.connection() as conn:
            if successes:
                rows += await conn.fetch(q.SUCCEED_MANY, *_success_columns(successes), now)
            if failures:
                rows += await conn.fetch(q.FAIL_MANY, *_failure_columns(failures), now)
        finished = {job.id: job for job in map(_job, rows)}
        return [finished.get(outcome.job_id) for outcome in outcomes]

    async def release(self, job_id: str, token: str, now: datetime) -> bool:
        async with self._db.connection() as conn:
            status: str = await conn.execute(q.RELEASE, now, job_id, token)
        return status.endswith(" 1")

    async def requeue(self, job_id: str, now: datetime) -> Job | None:
        return await self._fetch_one(q.REQUEUE, (now, job_id))

    async def list_jobs(
        self,
        pipeline: str,
        *,
        status: JobStatus | None = None,
        key_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        sql = q.list_query(status=status is not None, key=key_name is not None, cursor=bool(cursor))
        params = [pipeline, *(v for v in (status, key_name, cursor or None) if v), limit + 1]
        async with self._db.connection() as conn:
            rows = await conn.fetch(sql, *params)
        return page([_job(row) for row in rows], limit)

    async def count_by_status(self) -> dict[tuple[str, JobStatus], int]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(q.COUNT_BY_STATUS)
        return {(row[0], row[1]): int(row[2]) for row in rows}

    async def pending_callbacks(self, limit: int) -> list[Job]:
        async with self._db.connection() as conn:
            rows = await conn.fetch(q.SELECT_PENDING_CALLBACKS, limit)
        return [_job(row) for row in rows]

    async def record_callback(
        self, job_id: str, status: CallbackStatus, attempts: int, error: str | None
    ) -> None:
        async with self._db.connection() as conn:
            await conn.execute(q.RECORD_CALLBACK, status, attempts, error, job_id)

    async def _fetch_one(self, sql: str, params: Sequence[Any]) -> Job | None:
        async with self._db.connection() as conn:
            row = await conn.fetchrow(sql, *params)
        return None if row is None else _job(row)


def _job(row: Sequence[Any]) -> Job:
    return job_from_row(row, _as_datetime)


def _event_key(job: NewJob | Job) -> tuple[str, str]:
    return job.pipeline, job.event_id


def _insert_values(job: NewJob) -> tuple[Any, ...]:
    data = orjson.dumps(job.data).decode()
    return job.pipeline, job.event_id, job.key_name, data, job.callback_url, job.max_attempts


def _success_columns(successes: Sequence[Success]) -> tuple[list[Any], ...]:
    return (
        [s.job_id for s in successes], [s.token for s in successes],
        [orjson.dumps(s.result).decode() for s in successes], [s.validity for s in successes],
        *_usage_columns(s.usage for s in successes),
    )  # fmt: skip


def _failure_columns(failures: Sequence[Failure]) -> tuple[list[Any], ...]:
    return (
        [f.job_id for f in failures], [f.token for f in failures], [f.error for f in failures],
        *_usage_columns(f.usage for f in failures), [f.retry_at for f in failures],
    )  # fmt: skip


def _usage_columns(usages: Iterable[Usage]) -> tuple[list[Any], ...]:
    listed = list(usages)
    return (
        [u.cost_usd for u in listed], [u.input_tokens for u in listed],
        [u.output_tokens for u in listed],
    )  # fmt: skip


def _as_datetime(moment: datetime | None) -> datetime | None:
    return moment  # asyncpg decodes timestamptz itself
