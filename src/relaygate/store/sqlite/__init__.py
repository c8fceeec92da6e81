"""The embedded SQLite backend."""

from relaygate.store.sqlite.key_store import SqliteKeyStore

__all__ = ["SqliteKeyStore"]
