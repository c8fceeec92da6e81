"""``JobStore`` on PostgreSQL: jobs shared by worker processes on several machines."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from relaygate.jobs import postgres_queries as q
from relaygate.jobs.records import (
    CallbackStatus,
    Job,
    JobPage,
    JobStatus,
    NewJob,
    Usage,
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
        data = orjson.dumps(job.data).decode()
        params = (new_job_id(), job.pipeline, job.event_id, job.key_name, data,
                  job.callback_url, job.max_attempts, now)  # fmt: skip
        async with self._db.connection() as conn:
            row = await conn.fetchrow(q.INSERT, *params)
            if row is not None:
                return _job(row), True
            row = await conn.fetchrow(q.SELECT_BY_EVENT, job.pipeline, job.event_id)
        assert row is not None  # the conflicting row is committed: it never goes away
        return _job(row), False

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
        params = (orjson.dumps(result).decode(), validity, usage.cost_usd, usage.input_tokens,
                  usage.output_tokens, now, job_id, token)  # fmt: skip
        return await self._fetch_one(q.SUCCEED, params)

    async def fail(
        self, job_id: str, token: str, error: str, usage: Usage, now: datetime, retry_at: datetime
    ) -> Job | None:
        params = (error, usage.cost_usd, usage.input_tokens, usage.output_tokens, now,
                  retry_at, job_id, token)  # fmt: skip
        return await self._fetch_one(q.FAIL, params)

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


def _as_datetime(moment: datetime | None) -> datetime | None:
    return moment  # asyncpg decodes timestamptz itself
