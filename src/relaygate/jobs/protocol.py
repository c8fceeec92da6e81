"""The ``JobStore`` protocol both backends implement (tests/contract/test_job_store.py)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from relaygate.jobs.records import (
    AttemptOutcome,
    CallbackStatus,
    Job,
    JobPage,
    JobStatus,
    NewJob,
    Usage,
)


class JobStore(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def insert(self, job: NewJob, now: datetime) -> tuple[Job, bool]:
        """Store ``job`` queued, or find the one with its (pipeline, event_id): (job, created)."""
        ...

    async def insert_many(self, jobs: Sequence[NewJob], now: datetime) -> list[tuple[Job, bool]]:
        """``insert`` for several events in one write (a group commit), answers in order. An
        event repeated within ``jobs`` is created once; its later entries find that job."""
        ...

    async def get(self, job_id: str) -> Job | None: ...

    async def claim(
        self, pipeline: str, limit: int, now: datetime, lease_until: datetime
    ) -> list[Job]:
        """Up to ``limit`` due jobs, now running under a fresh lease token, attempts + 1.

        Due: queued or failed with ``run_after <= now``, or running with an expired lease (its
        worker died; the lost attempt's error is recorded). A job whose expired lease was its
        last attempt is made dead instead.
        """
        ...

    async def renew(self, job_id: str, token: str, lease_until: datetime) -> bool:
        """Extend a lease still held; False when it was taken over."""
        ...

    async def succeed(
        self, job_id: str, token: str, result: Any, validity: str, usage: Usage, now: datetime
    ) -> Job | None:
        """Commit the result if ``token`` still holds the lease; None when it does not."""
        ...

    async def fail(
        self, job_id: str, token: str, error: str, usage: Usage, now: datetime, retry_at: datetime
    ) -> Job | None:
        """Record a failed attempt: failed (due at ``retry_at``) or, at max_attempts, dead."""
        ...

    async def finish_many(
        self, outcomes: Sequence[AttemptOutcome], now: datetime
    ) -> list[Job | None]:
        """``succeed`` or ``fail`` for several attempts in one write (a group commit), answers
        in order; each is fenced by its own lease token (None where the lease was lost)."""
        ...

    async def release(self, job_id: str, token: str, now: datetime) -> bool:
        """Give back a job whose attempt was stopped (a graceful shutdown): queued again at once,
        the unfinished attempt not counted. False when the lease was no longer held."""
        ...

    async def requeue(self, job_id: str, now: datetime) -> Job | None:
        """A dead or failed job queued again with a fresh set of attempts; None otherwise."""
        ...

    async def list_jobs(
        self,
        pipeline: str,
        *,
        status: JobStatus | None = None,
        key_name: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> JobPage:
        """Newest first; ``cursor`` is the last id of the previous page."""
        ...

    async def count_by_status(self) -> dict[tuple[str, JobStatus], int]: ...

    async def pending_callbacks(self, limit: int) -> list[Job]: ...

    async def record_callback(
        self, job_id: str, status: CallbackStatus, attempts: int, error: str | None
    ) -> None: ...
