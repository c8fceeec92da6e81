"""Storage: protocols, records, errors and the SQLite / PostgreSQL backends."""

from relaygate.store.errors import (
    DuplicateNameError,
    StoreDataError,
    StoreError,
    StoreUnavailableError,
)
from relaygate.store.factory import (
    create_key_store,
    create_ledger_store,
    is_shared_url,
    open_store,
)
from relaygate.store.ledger_records import (
    GROUP_BY_CHOICES,
    BalanceEntry,
    BudgetCounters,
    GroupBy,
    LedgerRow,
    ReserveAsk,
    SpendDelta,
    UsageFilter,
    UsageGroup,
)
from relaygate.store.protocols import KeyStore, LedgerStore
from relaygate.store.records import UPDATABLE_FIELDS, KeyRecord, KeySpec
from relaygate.store.urls import redact_url

__all__ = [
    "GROUP_BY_CHOICES",
    "UPDATABLE_FIELDS",
    "BalanceEntry",
    "BudgetCounters",
    "DuplicateNameError",
    "GroupBy",
    "KeyRecord",
    "KeySpec",
    "KeyStore",
    "LedgerRow",
    "LedgerStore",
    "ReserveAsk",
    "SpendDelta",
    "StoreDataError",
    "StoreError",
    "StoreUnavailableError",
    "UsageFilter",
    "UsageGroup",
    "create_key_store",
    "create_ledger_store",
    "is_shared_url",
    "open_store",
    "redact_url",
]
