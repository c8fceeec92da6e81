"""``JobStore`` on SQLite: the embedded default, for jobs run by one process."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from relaygate.jobs import sqlite_queries as q
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
from relaygate.store.sqlite.connection import SqliteDatabase, from_text, to_text


class SqliteJobStore(DatabaseOwner[SqliteDatabase]):
    """Claims run in one ``BEGIN IMMEDIATE`` transaction, so two coroutines (or processes
    sharing the file) never claim one job twice."""

    def __init__(self, path: str) -> None:
        self._db = SqliteDatabase(path)

    async def insert(self, job: NewJob, now: datetime) -> tuple[Job, bool]:
        return (await self.insert_many([job], now))[0]

    async def insert_many(self, jobs: Sequence[NewJob], now: datetime) -> list[tuple[Job, bool]]:
        if not jobs:
            return []
        ids = [new_job_id() for _ in jobs]
        params = [
            (job_id, job.pipeline, job.event_id, job.key_name, orjson.dumps(job.data).decode(),
             job.callback_url, job.max_attempts, to_text(now), to_text(now))
            for job_id, job in zip(ids, jobs, strict=True)
        ]  # fmt: skip
        pairs = list(dict.fromkeys((job.pipeline, job.event_id) for job in jobs))
        async with self._db.transaction() as conn:
            await conn.executemany(q.INSERT, params)
            sql = q.select_by_events(len(pairs))
            async with conn.execute(sql, [v for pair in pairs for v in pair]) as rows:
                found = {
                    (job.pipeline, job.event_id): job for job in map(_job, await rows.fetchall())
                }
        return answers_in_order(jobs, ids, found)

    async def get(self, job_id: str) -> Job | None:
        async with self._db.reading() as conn, conn.execute(q.SELECT_BY_ID, (job_id,)) as rows:
            row = await rows.fetchone()
        return None if row is None else _job(row)

    async def claim(
        self, pipeline: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Job]:
        params = (pipeline, to_text(now), to_text(lease_until), limit)
        async with self._db.transaction() as conn:
            await conn.execute(q.BURY_EXPIRED, (to_text(now), pipeline))
            async with conn.execute(q.CLAIM, params) as rows:
                claimed = [_job(row) for row in await rows.fetchall()]
        return sorted(claimed, key=lambda job: (job.run_after, job.id))

    async def renew(self, job_id: str, token: str, lease_until: datetime) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(q.RENEW, (to_text(lease_until), job_id, token))
            return cursor.rowcount == 1

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
        successes = [_success_values(o) for o in outcomes if isinstance(o, Success)]
        failures = [_failure_values(o) for o in outcomes if isinstance(o, Failure)]
        finished: dict[str, Job] = {}
        async with self._db.transaction() as conn:
            for sql, values in ((q.SUCCEED_MANY, successes), (q.FAIL_MANY, failures)):
                if not values:
                    continue
                params = (orjson.dumps(values).decode(), to_text(now))
                async with conn.execute(sql, params) as rows:
                    finished.update((job.id, job) for job in map(_job, await rows.fetchall()))
        return [finished.get(outcome.job_id) for outcome in outcomes]

    async def release(self, job_id: str, token: str, now: datetime) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(q.RELEASE, (to_text(now), job_id, token))
            return cursor.rowcount == 1

    async def requeue(self, job_id: str, now: datetime) -> Job | None:
        return await self._write_one(q.REQUEUE, (to_text(now), job_id))

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
        async with self._db.reading() as conn, conn.execute(sql, params) as rows:
            jobs = [_job(row) for row in await rows.fetchall()]
        return page(jobs, limit)

    async def count_by_status(self) -> dict[tuple[str, JobStatus], int]:
        async with self._db.reading() as conn, conn.execute(q.COUNT_BY_STATUS) as rows:
            return {(row[0], row[1]): int(row[2]) for row in await rows.fetchall()}

    async def pending_callbacks(self, limit: int) -> list[Job]:
        sql = q.SELECT_PENDING_CALLBACKS
        async with self._db.reading() as conn, conn.execute(sql, (limit,)) as rows:
            return [_job(row) for row in await rows.fetchall()]

    async def record_callback(
        self, job_id: str, status: CallbackStatus, attempts: int, error: str | None
    ) -> None:
        async with self._db.transaction() as conn:
            await conn.execute(q.RECORD_CALLBACK, (status, attempts, error, job_id))

    async def _write_one(self, sql: str, params: Sequence[Any]) -> Job | None:
        async with self._db.transaction() as conn, conn.execute(sql, params) as rows:
            row = await rows.fetchone()
        return None if row is None else _job(row)


def _job(row: Sequence[Any]) -> Job:
    return job_from_row(row, from_text)


def _success_values(outcome: Success) -> list[Any]:
    usage = outcome.usage
    return [
        outcome.job_id, outcome.token, orjson.dumps(outcome.result).decode(), outcome.validity,
        usage.cost_usd, usage.input_tokens, usage.output_tokens,
    ]  # fmt: skip


def _failure_values(outcome: Failure) -> list[Any]:
    usage = outcome.usage
    return [
        outcome.job_id, outcome.token, outcome.error, usage.cost_usd, usage.input_tokens,
        usage.output_tokens, to_text(outcome.retry_at),
    ]  # fmt: skip
