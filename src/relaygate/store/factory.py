"""Database URL -> store. The scheme picks the backend; nothing connects until ``open``."""

from __future__ import annotations

from relaygate.store.postgres.key_store import PostgresKeyStore
from relaygate.store.protocols import KeyStore
from relaygate.store.sqlite.key_store import SqliteKeyStore
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
    shown = f"'{scheme}'" if scheme else "(none)"
    raise ValueError(
        f"unsupported database URL scheme {shown}: use sqlite:///path/to/file.db "
        "or postgresql://user@host:5432/dbname"
    )


async def open_store(database_url: str) -> KeyStore:
    """Create the store for ``database_url``, connect, and apply pending migrations."""
    store = create_key_store(database_url)
    await store.open()
    return store
