"""``JobStore`` on SQLite: the embedded default, for jobs run by one process."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from relaygate.jobs import sqlite_queries as q
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
from relaygate.store.sqlite.connection import SqliteDatabase, from_text, to_text


class SqliteJobStore(DatabaseOwner[SqliteDatabase]):
    """Claims run in one ``BEGIN IMMEDIATE`` transaction, so two coroutines (or processes
    sharing the file) never claim one job twice."""

    def __init__(self, path: str) -> None:
        self._db = SqliteDatabase(path)

    async def insert(self, job: NewJob, now: datetime) -> tuple[Job, bool]:
        params = (
            new_job_id(), job.pipeline, job.event_id, job.key_name,
            orjson.dumps(job.data).decode(), job.callback_url, job.max_attempts,
            to_text(now), to_text(now),
        )  # fmt: skip
        async with self._db.transaction() as conn:
            cursor = await conn.execute(q.INSERT, params)
            created = cursor.rowcount == 1
            async with conn.execute(q.SELECT_BY_EVENT, (job.pipeline, job.event_id)) as rows:
                row = await rows.fetchone()
        assert row is not None
        return _job(row), created

    async def get(self, job_id: str) -> Job | None:
        async with self._db.reading() as conn, conn.execute(q.SELECT_BY_ID, (job_id,)) as rows:
            row = await rows.fetchone()
        return None if row is None else _job(row)

    async def claim(
        self, pipeline: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Job]:
        claimed: list[Job] = []
        async with self._db.transaction() as conn:
            await conn.execute(q.BURY_EXPIRED, (to_text(now), pipeline))
            async with conn.execute(q.SELECT_DUE, (pipeline, to_text(now), limit)) as rows:
                ids = [row[0] for row in await rows.fetchall()]
            for job_id in ids:
                params = (secrets.token_hex(16), to_text(lease_until), to_text(now), job_id)
                async with conn.execute(q.CLAIM, params) as rows:
                    row = await rows.fetchone()
                if row is not None:
                    claimed.append(_job(row))
        return claimed

    async def renew(self, job_id: str, token: str, lease_until: datetime) -> bool:
        async with self._db.transaction() as conn:
            cursor = await conn.execute(q.RENEW, (to_text(lease_until), job_id, token))
            return cursor.rowcount == 1

    async def succeed(
        self, job_id: str, token: str, result: Any, validity: str, usage: Usage, now: datetime
    ) -> Job | None:
        params = (
            orjson.dumps(result).decode(), validity, usage.cost_usd, usage.input_tokens,
            usage.output_tokens, to_text(now), job_id, token,
        )  # fmt: skip
        return await self._write_one(q.SUCCEED, params)

    async def fail(
        self, job_id: str, token: str, error: str, usage: Usage, now: datetime, retry_at: datetime
    ) -> Job | None:
        params = (
            error, usage.cost_usd, usage.input_tokens, usage.output_tokens, to_text(now),
            to_text(retry_at), job_id, token,
        )  # fmt: skip
        return await self._write_one(q.FAIL, params)

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
