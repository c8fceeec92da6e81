"""One aiosqlite connection with migrations, a transaction lock and driver-error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiosqlite

from relaygate.store.errors import StoreDataError, StoreError, StoreUnavailableError
from relaygate.store.migrations import Migration, check_sequence
from relaygate.store.sqlite import queries
from relaygate.store.sqlite.migrations import MIGRATIONS

MEMORY = ":memory:"
BUSY_TIMEOUT_MS = 5000
CHECKPOINT_SECONDS = 1.0
logger = logging.getLogger("relaygate.store")
_UNAVAILABLE_MARKERS = ("locked", "unable to open", "disk i/o", "readonly", "busy")


class SqliteDatabase:
    """A single connection shared by one store's coroutines.

    aiosqlite runs statements one at a time on its own thread, but a transaction spans several
    awaits, so ``transaction()`` and ``reading()`` hold an asyncio lock to keep one coroutine's
    statements out of another's transaction. Writes use BEGIN IMMEDIATE so that several
    processes sharing the file queue on ``busy_timeout`` instead of failing mid-transaction.

    A file database checkpoints its WAL from a second connection in the background, not in the
    commit that crosses SQLite's threshold: the checkpoint's fsync (often 100+ ms on a busy
    disk) would hold the transaction lock and stall every caller queued behind it.
    """

    def __init__(self, path: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        check_sequence(migrations)
        self.path = path
        self._migrations = tuple(migrations)
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._checkpointer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        if self._conn is not None:
            return
        if self.path != MEMORY:
            _make_parent(Path(self.path))
        with self._mapped():
            conn = await aiosqlite.connect(self.path, isolation_level=None)
            try:
                await _configure(conn, in_memory=self.path == MEMORY)
                await _migrate(conn, self._migrations)
            except BaseException:
                await conn.close()
                raise
        self._conn = conn
        if self.path != MEMORY:
            self._checkpointer = asyncio.create_task(self._checkpoint_regularly())

    async def close(self) -> None:
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            checkpointer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await checkpointer
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._mapped():
                await conn.close()

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for reads, with errors mapped."""
        async with self._lock:
            with self._mapped():
                yield self._connection()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._lock:
            with self._mapped():
                conn = self._connection()
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await conn.rollback()
                    raise
                await conn.commit()

    async def _checkpoint_regularly(self) -> None:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        try:
            await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            while True:
                await asyncio.sleep(CHECKPOINT_SECONDS)
                try:
                    await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as exc:
                    logger.warning("SQLite database %s: checkpoint failed: %s", self.path, exc)
        finally:
            await conn.close()

    def _connection(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise StoreError("the SQLite store is not open")
        return self._conn

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if any(marker in text.lower() for marker in _UNAVAILABLE_MARKERS):
                raise StoreUnavailableError(f"SQLite database {self.path}: {text}") from exc
            raise StoreError(f"SQLite database {self.path}: {text}") from exc
        except (sqlite3.IntegrityError, sqlite3.DataError, OverflowError) as exc:
            # OverflowError: an integer beyond 64 bits, refused by the driver while binding.
            raise StoreDataError(f"SQLite database {self.path} rejected the data: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite database {self.path}: {exc}") from exc


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_text(moment: datetime | None) -> str | None:
    """UTC ISO-8601 with fixed microseconds, so text order is time order."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def from_text(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreUnavailableError(
            f"cannot create the directory {path.parent} for SQLite: {exc.strerror}"
        ) from None


async def _configure(conn: aiosqlite.Connection, *, in_memory: bool) -> None:
    await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    await conn.execute("PRAGMA foreign_keys = ON")
    if not in_memory:
        await conn.execute("PRAGMA journal_mode = WAL")
        await conn.execute("PRAGMA synchronous = NORMAL")
        await conn.execute("PRAGMA wal_autocheckpoint = 0")  # see SqliteDatabase


async def _migrate(conn: aiosqlite.Connection, migrations: Sequence[Migration]) -> None:
    await conn.execute(queries.CREATE_MIGRATIONS_TABLE)
    for migration in migrations:
        await conn.execute("BEGIN IMMEDIATE")
        try:
            async with conn.execute(queries.SELECT_APPLIED_VERSIONS) as cursor:
                applied = {int(row[0]) for row in await cursor.fetchall()}
            if migration.version not in applied:
                for statement in migration.statements:
                    await conn.execute(statement)
                await conn.execute(
                    queries.INSERT_APPLIED_VERSION, (migration.version, to_text(utc_now()))
                )
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
