"""The shared PostgreSQL backend."""

from relaygate.store.postgres.key_store import PostgresKeyStore

__all__ = ["PostgresKeyStore"]
