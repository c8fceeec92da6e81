"""Storage: protocols, records, errors and the SQLite / PostgreSQL backends."""

from relaygate.store.errors import DuplicateNameError, StoreError, StoreUnavailableError
from relaygate.store.factory import create_key_store, open_store
from relaygate.store.protocols import KeyStore
from relaygate.store.records import UPDATABLE_FIELDS, KeyRecord, KeySpec
from relaygate.store.urls import redact_url

__all__ = [
    "UPDATABLE_FIELDS",
    "DuplicateNameError",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "StoreError",
    "StoreUnavailableError",
    "create_key_store",
    "open_store",
    "redact_url",
]
