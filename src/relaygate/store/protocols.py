"""Storage protocols. Each has an embedded (SQLite) and a shared (PostgreSQL) implementation that
pass the same contract suite (tests/contract/)."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

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
