"""Database URL -> job store, like ``relaygate.store.factory`` for keys and the ledger."""

from __future__ import annotations

from relaygate.jobs.postgres_store import PostgresJobStore
from relaygate.jobs.protocol import JobStore
from relaygate.jobs.sqlite_store import SqliteJobStore
from relaygate.store.urls import POSTGRES_SCHEMES, sqlite_path, url_scheme


def create_job_store(database_url: str) -> JobStore:
    """An unopened job store in the gateway's database (its tables come with its migrations)."""
    scheme = url_scheme(database_url)
    if scheme == "sqlite":
        return SqliteJobStore(sqlite_path(database_url))
    if scheme in POSTGRES_SCHEMES:
        return PostgresJobStore(database_url)
    raise ValueError(f"unsupported database URL scheme '{scheme}' for pipeline jobs")
