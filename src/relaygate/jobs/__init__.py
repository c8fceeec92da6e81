"""Durable extraction jobs: records, the ``JobStore`` protocol, SQLite and PostgreSQL backends
(their tables are migration 6 of each backend's list in ``relaygate.store``), retry backoff."""

from relaygate.jobs.backoff import retry_delay
from relaygate.jobs.factory import create_job_store
from relaygate.jobs.postgres_store import PostgresJobStore
from relaygate.jobs.protocol import JobStore
from relaygate.jobs.records import (
    JOB_STATUSES,
    AttemptOutcome,
    CallbackStatus,
    Failure,
    Job,
    JobPage,
    JobStatus,
    NewJob,
    Success,
    Usage,
)
from relaygate.jobs.sqlite_store import SqliteJobStore

__all__ = [
    "JOB_STATUSES",
    "AttemptOutcome",
    "CallbackStatus",
    "Failure",
    "Job",
    "JobPage",
    "JobStatus",
    "JobStore",
    "NewJob",
    "PostgresJobStore",
    "SqliteJobStore",
    "Success",
    "Usage",
    "create_job_store",
    "retry_delay",
]
