"""Prepaid balances: every change is a balance entry, so the credit can always be explained.

A key's ``balance_usd`` is the sum of its entries (an initial credit at creation, then top-ups and
adjustments); what is left is that minus the spend charged to it (the budget counters). Both the
CLI and the admin API create keys and move money through these functions only.
"""

from __future__ import annotations

import math
from dataclasses import replace

from relaygate.store.errors import StoreError
from relaygate.store.ledger_records import BalanceEntry
from relaygate.store.protocols import KeyStore, LedgerStore
from relaygate.store.records import KeyRecord, KeySpec

ENTRY_KINDS = frozenset({"initial", "topup", "adjustment"})
MAX_AMOUNT_USD = 1e9


class UnknownKeyError(LookupError):
    """No live key has this name; the message names it."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no key named '{name}'")
        self.name = name


def check_amount(amount: float, field: str, *, allow_negative: bool = False) -> float:
    """A finite amount within bounds, or ValueError naming ``field``."""
    if isinstance(amount, bool) or not isinstance(amount, int | float):
        raise ValueError(f"{field}: expected a number")
    value = float(amount)
    if not math.isfinite(value) or abs(value) > MAX_AMOUNT_USD:
        raise ValueError(f"{field}: expected a finite amount up to {MAX_AMOUNT_USD:.0f}")
    if value == 0 or (value < 0 and not allow_negative):
        raise ValueError(f"{field}: expected an amount above 0")
    return value


async def create_key(keys: KeyStore, ledger: LedgerStore, spec: KeySpec) -> KeyRecord:
    """Create the key; an initial balance is recorded as an entry of kind ``initial``.

    The key is created with a zero balance first, so it can never spend unchecked between the
    two steps.
    """
    if spec.balance_usd is None:
        return await keys.create_key(spec)
    amount = spec.balance_usd
    if amount < 0 or not math.isfinite(amount):
        raise ValueError("balance_usd: expected 0 or more")
    record = await keys.create_key(replace(spec, balance_usd=0.0))
    if amount == 0:
        return record
    if await ledger.top_up(record.name, amount, "initial", "balance at creation") is None:
        raise StoreError(f"key '{record.name}' vanished while its balance was recorded")
    return replace(record, balance_usd=amount)


async def top_up(
    ledger: LedgerStore,
    name: str,
    amount_usd: float,
    *,
    kind: str = "topup",
    note: str | None = None,
) -> BalanceEntry:
    """Add ``amount_usd`` (negative only for an ``adjustment``) to the key's credit."""
    if kind not in ENTRY_KINDS:
        raise ValueError(f"kind: expected one of {', '.join(sorted(ENTRY_KINDS))}")
    amount = check_amount(amount_usd, "amount", allow_negative=kind == "adjustment")
    entry = await ledger.top_up(name, amount, kind, note)
    if entry is None:
        raise UnknownKeyError(name)
    return entry
