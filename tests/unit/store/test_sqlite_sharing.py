"""The SQLite stores of one process share their file's connection, and the last one closes it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from relaygate.jobs import NewJob, SqliteJobStore
from relaygate.store import StoreError
from relaygate.store.sqlite.connection import SqliteDatabase

T0 = datetime(2031, 5, 6, tzinfo=UTC)


async def test_stores_of_one_file_share_a_connection_until_the_last_closes(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "relaygate.db")
    first, second = SqliteDatabase(path), SqliteDatabase(path)
    await first.open()
    await second.open()
    async with first.reading() as one:
        pass
    async with second.reading() as other:
        assert other is one
    await first.close()
    async with second.transaction() as conn:
        await conn.execute("SELECT 1")
    await second.close()
    with pytest.raises(StoreError, match="not open"):
        async with second.reading():
            pass


async def test_two_job_stores_on_one_file_see_each_others_jobs(tmp_path: Path) -> None:
    path = str(tmp_path / "relaygate.db")
    async with SqliteJobStore(path) as a, SqliteJobStore(path) as b:
        job, created = await a.insert(NewJob("orders", "ev-1", "team-a", {}, 3), T0)
        again, created_again = await b.insert(NewJob("orders", "ev-1", "team-a", {}, 3), T0)
    assert (created, created_again, again.id) == (True, False, job.id)


async def test_in_memory_databases_stay_apart() -> None:
    async with SqliteJobStore(":memory:") as a, SqliteJobStore(":memory:") as b:
        await a.insert(NewJob("orders", "ev-1", "team-a", {}, 3), T0)
        assert (await b.list_jobs("orders")).jobs == []
