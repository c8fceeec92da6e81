"""One aiosqlite connection with migrations, a transaction lock and driver-error mapping."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
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


# sqlite3 binds a None only after looking for an adapter: with none registered, that lookup
# raises and discards an AttributeError (its message formatted) for every None bound, ~0.3 us
# each; a ledger row binds up to eight (a refusal's model, deployment, ttft, end user, tags...).
# Registered, it is a dict hit; a None still binds as NULL. The adapter is a C callable that
# answers None for anything (an empty dict's ``get``): a Python function cost a frame per None.
_NOTHING: dict[object, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)


@dataclass(eq=False)
class _Shared:
    """The connection of one database file in one event loop, and who uses it."""

    key: str
    loop: asyncio.AbstractEventLoop
    conn: aiosqlite.Connection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    checkpointer: asyncio.Task[None] | None = None


# Open file databases by real path: the stores of one process share their file's connection.
_SHARED: dict[str, _Shared] = {}


class SqliteDatabase:
    """A connection shared by the coroutines of every store of one process using this file.

    aiosqlite runs statements one at a time on its own thread, but a transaction spans several
    awaits, so ``transaction()`` and ``reading()`` hold an asyncio lock to keep one coroutine's
    statements out of another's transaction. The stores (keys, ledger, jobs) of one file share
    that connection and lock: their writes queue in order on the lock, where separate
    connections would meet on SQLite's busy handler, which polls with sleeps of up to 100 ms.
    Writes use BEGIN IMMEDIATE so that several processes sharing the file queue on
    ``busy_timeout`` instead of failing mid-transaction.

    A file database checkpoints its WAL from a second connection in the background, not in the
    commit that crosses SQLite's threshold: the checkpoint's fsync (often 100+ ms on a busy
    disk) would hold the transaction lock and stall every caller queued behind it.
    """

    def __init__(self, path: str, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        check_sequence(migrations)
        self.path = path
        self._migrations = tuple(migrations)
        self._key = MEMORY if path == MEMORY else os.path.realpath(path)
        self._shared: _Shared | None = None

    async def open(self) -> None:
        if self._shared is not None:
            return
        loop = asyncio.get_running_loop()
        if self.path == MEMORY:
            shared = _Shared(MEMORY, loop)  # every in-memory database is its own
        else:
            _make_parent(Path(self.path))
            key = self._key
            shared = _SHARED.get(key) or _SHARED.setdefault(key, _Shared(key, loop))
            if shared.loop is not loop:
                shared = _Shared(MEMORY, loop)  # another loop's (a test's): not shareable
        shared.users += 1
        try:
            async with shared.lock:
                with self._mapped():
                    if shared.conn is None:
                        shared.conn = await _connect(self.path)
                        if self.path != MEMORY:
                            shared.checkpointer = asyncio.create_task(_checkpoint(self.path))
                    await _migrate(shared.conn, self._migrations)
        except BaseException:
            await _release(shared)
            raise
        self._shared = shared

    async def close(self) -> None:
        shared, self._shared = self._shared, None
        if shared is not None:
            with self._mapped():
                await _release(shared)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection, for reads, with errors mapped."""
        async with self._opened().lock:
            with self._mapped():
                yield self._connection()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises."""
        async with self._opened().lock:
            with self._mapped():
                conn = self._connection()
                await conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                except BaseException:
                    await conn.rollback()
                    raise
                await conn.commit()

    def _opened(self) -> _Shared:
        if self._shared is None or self._shared.conn is None:
            raise StoreError("the SQLite store is not open")
        return self._shared

    def _connection(self) -> aiosqlite.Connection:
        conn = self._opened().conn
        assert conn is not None
        return conn

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


async def _connect(path: str) -> aiosqlite.Connection:
    conn = await _connect_to_the_end(path)
    try:
        await _configure(conn, in_memory=path == MEMORY)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _release(shared: _Shared) -> None:
    """One user fewer; the last one closes the connection and stops its checkpoints."""
    shared.users -= 1
    if shared.users > 0:
        return
    if _SHARED.get(shared.key) is shared:
        del _SHARED[shared.key]
    checkpointer, shared.checkpointer = shared.checkpointer, None
    if checkpointer is not None:
        checkpointer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checkpointer
    conn, shared.conn = shared.conn, None
    if conn is not None:
        await conn.close()


async def _checkpoint(path: str) -> None:
    """A passive WAL checkpoint each ``CHECKPOINT_SECONDS``, on a connection of its own, opened
    when the first is due (a short command never opens it)."""
    await asyncio.sleep(CHECKPOINT_SECONDS)
    try:
        conn = await _connect_to_the_end(path)
    except sqlite3.Error as exc:
        logger.warning("SQLite database %s: no checkpoint connection: %s", path, exc)
        return
    try:
        await conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        while True:
            try:
                await conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:
                logger.warning("SQLite database %s: checkpoint failed: %s", path, exc)
            await asyncio.sleep(CHECKPOINT_SECONDS)
    finally:
        await conn.close()


async def _connect_to_the_end(path: str) -> aiosqlite.Connection:
    """``aiosqlite.connect`` that a cancellation does not abandon half-way: aiosqlite's thread
    finishes the connect regardless, and, abandoned, hands its result to the loop after
    ``asyncio.run`` has closed it (an exception in that thread, a leaked connection). Cancelled,
    this waits for the connect, closes the connection, then lets the cancellation go on."""
    opening = asyncio.ensure_future(aiosqlite.connect(path, isolation_level=None))
    try:
        return await asyncio.shield(opening)
    except asyncio.CancelledError:
        with contextlib.suppress(sqlite3.Error):
            await (await opening).close()
        raise


def utc_now() -> datetime:
    return datetime.now(UTC)


# The second to_text wrote last: [start, end) and its text. Rows and timestamps come in time
# order and the second's text is most of isoformat's cost; two comparisons of UTC datetimes
# (same tzinfo: compared as bytes) tell a moment of that second cheaper than its six fields.
# One tuple, replaced whole, so threads sharing it never see a second with another's text.
_ONE_SECOND = timedelta(seconds=1)
_last_second: tuple[datetime, datetime, str] = (datetime.max.replace(tzinfo=UTC),) * 2 + ("",)
# "000" to "999": a microsecond's six digits in two lookups, cheaper than a format spec.
_DIGITS = tuple(f"{n:03d}" for n in range(1000))


def to_text(moment: datetime | None) -> str | None:
    """UTC ISO-8601 with fixed microseconds (``isoformat(timespec="microseconds")`` of the UTC
    time), so text order is time order."""
    global _last_second
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    start, end, text = _last_second
    if not start <= moment < end:
        start = moment.replace(microsecond=0)
        text = start.replace(tzinfo=None).isoformat()
        # The last second a datetime holds has no end: its moments are formatted afresh.
        end = start + _ONE_SECOND if start.year < datetime.max.year else start
        _last_second = (start, end, text)
    micro = moment.microsecond
    return f"{text}.{_DIGITS[micro // 1000]}{_DIGITS[micro % 1000]}+00:00"


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
