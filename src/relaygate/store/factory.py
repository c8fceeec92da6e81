"""Database URL -> store. The scheme picks the backend; nothing connects until ``open``."""

from __future__ import annotations

from relaygate.store.postgres.key_store import PostgresKeyStore
from relaygate.store.postgres.ledger_store import PostgresLedgerStore
from relaygate.store.protocols import KeyStore, LedgerStore
from relaygate.store.sqlite.key_store import SqliteKeyStore
from relaygate.store.sqlite.ledger_store import SqliteLedgerStore
from relaygate.store.urls import POSTGRES_SCHEMES, sqlite_path, url_scheme


def create_key_store(database_url: str) -> KeyStore:
    """An unopened store for ``sqlite:///path``, ``sqlite:///:memory:`` or ``postgresql://...``.

    Raises ValueError naming the scheme (never the whole URL, which may hold a password).
    """
    scheme = url_scheme(database_url)
    if scheme == "sqlite":
        return SqliteKeyStore(sqlite_path(database_url))
    if scheme in POSTGRES_SCHEMES:
        return PostgresKeyStore(database_url)
    raise _unsupported(scheme)


def create_ledger_store(database_url: str) -> LedgerStore:
    """An unopened ledger store for the same URLs as ``create_key_store``.

    With ``sqlite:///:memory:`` the ledger gets a memory database of its own (tests only).
    """
    scheme = url_scheme(database_url)
    if scheme == "sqlite":
        return SqliteLedgerStore(sqlite_path(database_url))
    if scheme in POSTGRES_SCHEMES:
        return PostgresLedgerStore(database_url)
    raise _unsupported(scheme)


def is_shared_url(database_url: str) -> bool:
    """Whether the URL names a database several gateway processes can share (PostgreSQL)."""
    return url_scheme(database_url) in POSTGRES_SCHEMES


def _unsupported(scheme: str) -> ValueError:
    shown = f"'{scheme}'" if scheme else "(none)"
    return ValueError(
        f"unsupported database URL scheme {shown}: use sqlite:///path/to/file.db "
        "or postgresql://user@host:5432/dbname"
    )


async def open_store(database_url: str) -> KeyStore:
    """Create the store for ``database_url``, connect, and apply pending migrations."""
    store = create_key_store(database_url)
    await store.open()
    return store
