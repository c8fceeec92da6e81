"""The open/close lifecycle every store backend shares: one database handle, usable as
``async with``."""

from __future__ import annotations

from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar


class Database(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...


DB = TypeVar("DB", bound=Database)


class DatabaseOwner(Generic[DB]):
    """A store that owns ``_db``: ``open`` and ``close`` it, or use the store as a context."""

    _db: DB

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
