"""Job records: what an event becomes, and what one attempt's end reports back."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import orjson

JobStatus = Literal["queued", "running", "succeeded", "failed", "dead"]
JOB_STATUSES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "dead")
CallbackStatus = Literal["pending", "delivered", "failed"]

# Columns every backend selects, in the order ``job_from_row`` reads them.
JOB_COLUMNS = (
    "id, pipeline, event_id, key_name, status, data, callback_url, attempts, max_attempts, "
    "run_after, lease_token, lease_expires_at, result, validity, error, errors, cost_usd, "
    "input_tokens, output_tokens, callback_status, callback_attempts, callback_error, "
    "created_at, started_at, finished_at"
)
LEASE_EXPIRED = "the worker stopped before it finished (its lease expired)"


def new_job_id() -> str:
    """Time-ordered (fixed-width hex microseconds first), so ids order jobs and page lists."""
    return f"job_{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"


@dataclass(frozen=True, slots=True)
class NewJob:
    pipeline: str
    event_id: str
    key_name: str | None
    data: dict[str, Any]
    max_attempts: int
    callback_url: str | None = None


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    pipeline: str
    event_id: str
    key_name: str | None
    status: JobStatus
    data: dict[str, Any]
    callback_url: str | None
    attempts: int
    max_attempts: int
    run_after: datetime
    lease_token: str | None
    lease_expires_at: datetime | None
    result: Any
    validity: str | None
    error: str | None
    errors: tuple[str, ...]
    cost_usd: float
    input_tokens: int
    output_tokens: int
    callback_status: CallbackStatus | None
    callback_attempts: int
    callback_error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    def document(self) -> dict[str, Any]:
        """The job as the job API and callbacks show it."""
        return {
            "id": self.id,
            "pipeline": self.pipeline,
            "event_id": self.event_id,
            "status": self.status,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "errors": list(self.errors),
            "validity": self.validity,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
            "cost_usd": self.cost_usd,
            "tokens": {"input": self.input_tokens, "output": self.output_tokens},
            "callback": None
            if self.callback_status is None
            else {
                "status": self.callback_status,
                "attempts": self.callback_attempts,
                "error": self.callback_error,
            },
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """What one attempt spent; added to the job's totals when the attempt ends."""

    cost_usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Success:
    """An attempt that produced a valid result, to commit under its lease ``token``."""

    job_id: str
    token: str
    result: Any
    validity: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class Failure:
    """An attempt that failed: the job is due again at ``retry_at`` or, at max_attempts, dead."""

    job_id: str
    token: str
    error: str
    usage: Usage
    retry_at: datetime


AttemptOutcome = Success | Failure


@dataclass(frozen=True, slots=True)
class JobPage:
    jobs: list[Job] = field(default_factory=list)
    next_cursor: str | None = None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def page(jobs: list[Job], limit: int) -> JobPage:
    """One page from ``limit + 1`` rows: the extra row only says another page follows."""
    if len(jobs) > limit:
        return JobPage(jobs[:limit], jobs[limit - 1].id)
    return JobPage(jobs, None)


def job_from_row(row: Sequence[Any], time: Callable[[Any], datetime | None]) -> Job:
    """A row of ``JOB_COLUMNS``; JSON columns arrive as text, times through ``time``."""

    def required_time(value: Any) -> datetime:
        moment = time(value)
        assert moment is not None
        return moment

    return Job(
        id=row[0],
        pipeline=row[1],
        event_id=row[2],
        key_name=row[3],
        status=row[4],
        data=orjson.loads(row[5]),
        callback_url=row[6],
        attempts=int(row[7]),
        max_attempts=int(row[8]),
        run_after=required_time(row[9]),
        lease_token=row[10],
        lease_expires_at=time(row[11]),
        result=None if row[12] is None else orjson.loads(row[12]),
        validity=row[13],
        error=row[14],
        errors=tuple(orjson.loads(row[15])),
        cost_usd=float(row[16]),
        input_tokens=int(row[17]),
        output_tokens=int(row[18]),
        callback_status=row[19],
        callback_attempts=int(row[20]),
        callback_error=row[21],
        created_at=required_time(row[22]),
        started_at=time(row[23]),
        finished_at=time(row[24]),
    )


def answers_in_order(
    jobs: Sequence[NewJob], ids: Sequence[str], found: dict[tuple[str, str], Job]
) -> list[tuple[Job, bool]]:
    """``insert_many``'s answers: each event's stored job, created when it carries the id this
    batch gave it (a repeat within the batch, or an earlier job, has another)."""
    answers = []
    for job_id, job in zip(ids, jobs, strict=True):
        stored = found[(job.pipeline, job.event_id)]
        answers.append((stored, stored.id == job_id))
    return answers
