"""The SQLite stores of one process share their file's connection, and the last one closes it."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from relaygate.jobs import NewJob, SqliteJobStore
from relaygate.store import StoreError
from relaygate.store.sqlite import connection
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


def test_closing_while_the_checkpointer_connects_leaves_no_thread_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A short command (``relaygate keys create``) closes the database while the background
    checkpointer is still opening its own connection on aiosqlite's thread. That connect used to
    be abandoned: its thread finished after ``asyncio.run`` had closed the loop, failed to hand
    over its result ("Event loop is closed" in a thread) and leaked the connection."""
    real_connect = sqlite3.connect

    def slow_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        time.sleep(0.2)  # a loaded machine's connect
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", slow_connect)
    monkeypatch.setattr(connection, "CHECKPOINT_SECONDS", 0)
    failures: list[BaseException | None] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: failures.append(args.exc_value))

    async def open_and_close() -> None:
        database = SqliteDatabase(str(tmp_path / "relaygate.db"))
        await database.open()
        await asyncio.sleep(0.05)  # the checkpointer is connecting now
        await database.close()

    asyncio.run(open_and_close())
    time.sleep(0.4)  # an abandoned connect would have finished by now
    assert failures == []
