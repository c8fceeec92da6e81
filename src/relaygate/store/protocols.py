"""Storage protocols. Each has an embedded (SQLite) and a shared (PostgreSQL) implementation that
pass the same contract suite (tests/contract/)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from relaygate.store.ledger_records import (
    BalanceEntry,
    BudgetCounters,
    GroupBy,
    LedgerRow,
    ReserveAsk,
    SpendDelta,
    UsageFilter,
    UsageGroup,
)
from relaygate.store.records import KeyRecord, KeySpec


class KeyStore(Protocol):
    """Gateway keys and admin tokens, stored as sha256 hashes only.

    The request path never calls this: ``relaygate.auth.KeyCache`` holds a snapshot and polls
    ``keys_version()``, a counter bumped in the same transaction as every change to keys or admin
    tokens. Revoked keys keep their row (the ledger refers to them) and their name.
    """

    async def open(self) -> None:
        """Connect and apply pending migrations. Raises StoreUnavailableError if unreachable."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def create_key(self, spec: KeySpec) -> KeyRecord:
        """Insert a key; raises DuplicateNameError when the name is taken."""

    async def get_key_by_name(self, name: str) -> KeyRecord | None:
        """The key with this name, revoked or not, or None."""

    async def list_keys(self) -> list[KeyRecord]:
        """Every key, revoked included, oldest first."""

    async def count_keys(self) -> int:
        """How many keys exist, revoked included."""

    async def revoke_key(self, name: str) -> bool:
        """Disable the key for good and stamp ``revoked_at``; False when no such key exists."""

    async def update_key(self, name: str, **changes: object) -> KeyRecord | None:
        """Change fields listed in ``UPDATABLE_FIELDS``; None when no such key exists."""

    async def keys_version(self) -> int:
        """A counter that grows with every change to keys or admin tokens."""

    async def create_admin_token(self, token_hash: str) -> None:
        """Store the sha256 hash of a new admin token."""

    async def has_admin_token(self) -> bool:
        """Whether any admin token exists."""

    async def list_admin_token_hashes(self) -> list[str]:
        """All admin token hashes, for the in-process cache."""

    async def bootstrap(self, admin_token_hash: str, spec: KeySpec) -> KeyRecord | None:
        """Atomically create the first admin token and key when there are neither.

        Returns the key, or None when another process (or an earlier start) got there first.
        """


class LedgerStore(Protocol):
    """The usage ledger, prepaid-balance entries and per-key budget counters.

    Written by background tasks (the ledger writer, the budget settler) and read by reports; the
    request path awaits it only for ``try_reserve`` on keys that have a budget, in shared mode.
    """

    async def open(self) -> None:
        """Connect and apply pending migrations. Raises StoreUnavailableError if unreachable."""

    async def close(self) -> None:
        """Release connections; safe to call twice."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def insert_rows(self, rows: Sequence[LedgerRow]) -> int:
        """Insert rows in one statement/transaction; rows whose ``id`` exists are skipped.

        Returns how many were new.
        """

    async def count_rows(self, since: datetime | None = None) -> int:
        """How many rows exist (created at or after ``since``)."""

    async def rows_for_request(self, request_id: str) -> list[LedgerRow]:
        """Rows with this request id, oldest first."""

    async def recent_rows(
        self,
        limit: int,
        key_name: str | None = None,
        *,
        where: UsageFilter | None = None,
        offset: int = 0,
    ) -> list[LedgerRow]:
        """The newest rows first, of the rows ``where`` matches (default: of ``key_name``, or
        all), skipping the newest ``offset`` of them (a page)."""

    async def usage_groups(
        self,
        by: GroupBy,
        since: datetime | None = None,
        until: datetime | None = None,
        key_name: str | None = None,
        *,
        where: UsageFilter | None = None,
        tag_key: str | None = None,
    ) -> list[UsageGroup]:
        """Totals per key, model, UTC day, end user or value of tag ``tag_key`` (``by="tag"``)
        for ``since <= created_at < until``, of the rows ``where`` matches (default: of
        ``key_name``, or all)."""

    async def top_up(
        self, key_name: str, amount_usd: float, kind: str, note: str | None = None
    ) -> BalanceEntry | None:
        """Record a balance entry and add it to the key's prepaid credit in one transaction.

        Bumps the keys version so key caches see the new credit. None when no such live key.
        """

    async def balance_entries(self, key_name: str) -> list[BalanceEntry]:
        """The key's balance entries, oldest first."""

    async def load_budgets(self, month: str) -> list[BudgetCounters]:
        """Every key's counters; ``month_spent_usd`` is 0 for a row last used in another month."""

    async def budget_counters(self, key_name: str, month: str) -> BudgetCounters | None:
        """One key's counters (``month_spent_usd`` as in ``load_budgets``); None if it has none."""

    async def apply_spend(self, month: str, deltas: Sequence[SpendDelta]) -> None:
        """Charge finished requests and release their reservations, in one transaction."""

    async def try_reserve(self, ask: ReserveAsk) -> BudgetCounters | None:
        """Atomically reserve ``ask.amount_usd`` unless a limit would be passed (then None)."""
