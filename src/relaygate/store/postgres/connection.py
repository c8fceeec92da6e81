"""An asyncpg pool with migrations and driver-error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from relaygate.store.errors import StoreDataError, StoreError, StoreUnavailableError
from relaygate.store.migrations import Migration, check_sequence
from relaygate.store.postgres import queries
from relaygate.store.postgres.migrations import MIGRATIONS
from relaygate.store.urls import redact_url, scrub

CONNECT_TIMEOUT_S = 10.0
COMMAND_TIMEOUT_S = 30.0

# Values the server (class 22 data exceptions, class 23 constraint violations) or the driver (an
# argument it cannot encode; a subclass of InterfaceError, so checked before _UNAVAILABLE) rejects.
_REJECTED_DATA = (
    asyncpg.DataError,
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions._base.DataError,
)
# Failures that say "the server is not there or will not talk to us now", not "this query is wrong".
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InterfaceError,
    # Raised by a pooled connection that broke mid-operation (the server went away).
    asyncpg.InternalClientError,
)


class PostgresDatabase:
    """A small connection pool; every driver error leaves as a ``StoreError``."""

    def __init__(
        self,
        dsn: str,
        migrations: Sequence[Migration] = MIGRATIONS,
        *,
        max_size: int = 5,
    ) -> None:
        check_sequence(migrations)
        self._dsn = dsn
        self._migrations = tuple(migrations)
        self._max_size = max_size
        self._pool: Any = None
        self._ever_opened = False
        self.display_url = redact_url(dsn)

    async def open(self) -> None:
        if self._pool is not None:
            return
        with self._mapped():
            pool = await self._create_pool()
            try:
                async with pool.acquire() as conn:
                    await _migrate(conn, self._migrations)
            except BaseException:
                await pool.close()
                raise
        self._pool = pool
        self._ever_opened = True

    async def _create_pool(self) -> Any:
        try:
            return await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._max_size,
                timeout=CONNECT_TIMEOUT_S,
                command_timeout=COMMAND_TIMEOUT_S,
                reset=_keep_session,
            )
        except ValueError as exc:
            raise StoreError(self._describe("URL is invalid", exc)) from None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with self._mapped():
                await pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        """A pooled connection (autocommit), with errors mapped."""
        with self._mapped():
            async with self._acquire() as conn:
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        """A pooled connection inside a transaction that commits when the block ends."""
        with self._mapped():
            async with self._acquire() as conn, conn.transaction():
                yield conn

    def _acquire(self) -> Any:
        if self._pool is None:
            if not self._ever_opened:
                # Started while the server was unreachable: an outage, not a misuse.
                raise StoreUnavailableError(
                    f"PostgreSQL at {self.display_url} is not open: never connected yet"
                )
            raise StoreError("the PostgreSQL store is not open")
        return self._pool.acquire()

    @contextmanager
    def _mapped(self) -> Iterator[None]:
        try:
            yield
        except _REJECTED_DATA as exc:
            raise StoreDataError(self._describe("rejected the data", exc)) from exc
        except _UNAVAILABLE as exc:
            raise StoreUnavailableError(self._describe("is unavailable", exc)) from None
        except asyncpg.PostgresError as exc:
            raise StoreError(self._describe("refused the operation", exc)) from exc

    def _describe(self, what: str, exc: BaseException) -> str:
        detail = scrub(str(exc), self._dsn) or type(exc).__name__
        return f"PostgreSQL at {self.display_url} {what}: {detail}"


async def _keep_session(conn: Any) -> None:
    """Released connections skip asyncpg's default reset (a RESET ALL, UNLISTEN, advisory
    unlock round trip each time): the stores set no session state, listen to nothing and take
    only transaction-scoped advisory locks. asyncpg still rolls back an open transaction."""


async def _migrate(conn: Any, migrations: Sequence[Migration]) -> None:
    async with conn.transaction():
        await conn.execute(queries.LOCK_MIGRATIONS, queries.MIGRATION_LOCK_ID)
        await conn.execute(queries.CREATE_MIGRATIONS_TABLE)
        applied = {int(row[0]) for row in await conn.fetch(queries.SELECT_APPLIED_VERSIONS)}
        for migration in migrations:
            if migration.version in applied:
                continue
            for statement in migration.statements:
                await conn.execute(statement)
            await conn.execute(queries.INSERT_APPLIED_VERSION, migration.version)
