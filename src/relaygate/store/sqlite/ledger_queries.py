"""Named SQL for the SQLite ledger, balance entries and budget counters."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

import functools
from collections.abc import Callable

from relaygate.store.sql import LEDGER_COLUMNS, UsageSql

# One placeholder per column of LEDGER_COLUMNS and row.
LEDGER_PARAMS = LEDGER_COLUMNS.count(",") + 1
_ROW_VALUES = "(" + ", ".join("?" * LEDGER_PARAMS) + ")"
_SKIP_KNOWN_IDS = "ON CONFLICT (id) DO NOTHING"


@functools.cache
def insert_rows(count: int) -> str:
    """One INSERT of ``count`` rows: SQLite runs it in one step, where ``executemany`` of a
    one-row INSERT steps (and hands the GIL back and forth with the event loop) once per row."""
    values = ", ".join([_ROW_VALUES] * count)
    return f"INSERT INTO usage_ledger ({LEDGER_COLUMNS}) VALUES {values} {_SKIP_KNOWN_IDS}"


COUNT_ROWS = "SELECT count(*) FROM usage_ledger"
COUNT_ROWS_SINCE = "SELECT count(*) FROM usage_ledger WHERE created_at >= ?"
SELECT_BY_REQUEST = (
    f"SELECT {LEDGER_COLUMNS} FROM usage_ledger WHERE request_id = ? ORDER BY created_at"
)


class SqliteUsageSql(UsageSql):
    """Usage totals and recent rows on SQLite: ``tags`` is JSON text read with ``json_extract``."""

    day = "substr(created_at, 1, 10)"

    def placeholder(self, number: int) -> str:
        return "?"

    def tag_value(self, key_param: str) -> str:
        return f"json_extract(tags, {key_param})"

    def tag_key_param(self, key: str) -> object:
        # Tag keys never hold quotes (accounting.attribution.TAG_KEY).
        return f'$."{key}"'

    def tag_match(self, key: str, value: str, arg: Callable[[object], str]) -> str:
        return f"{self.tag_value(arg(self.tag_key_param(key)))} = {arg(value)}"


USAGE_SQL = SqliteUsageSql()


INSERT_BALANCE_ENTRY = """
INSERT INTO balance_entries (id, key_name, amount_usd, kind, note, created_at)
VALUES (?, ?, ?, ?, ?, ?)
"""
CREDIT_KEY = """
UPDATE api_keys SET balance_usd = coalesce(balance_usd, 0) + ?, updated_at = ?
WHERE name = ? AND revoked_at IS NULL
"""
BUMP_KEYS_VERSION = "UPDATE change_counters SET version = version + 1 WHERE name = 'keys'"
SELECT_BALANCE_ENTRIES = """
SELECT id, key_name, amount_usd, kind, note, created_at FROM balance_entries
WHERE key_name = ? ORDER BY created_at, id
"""

BUDGET_COLUMNS = "key_name, month, month_spent_usd, balance_spent_usd, reserved_usd"
ENSURE_BUDGET_ROW = """
INSERT INTO key_budgets (key_name, month, reserved_at) VALUES (?, ?, ?)
ON CONFLICT (key_name) DO NOTHING
"""
SELECT_BUDGETS = """
SELECT key_name, month, CASE WHEN month = :month THEN month_spent_usd ELSE 0 END,
       balance_spent_usd, reserved_usd
FROM key_budgets ORDER BY key_name
"""
SELECT_BUDGET = """
SELECT key_name, month, CASE WHEN month = :month THEN month_spent_usd ELSE 0 END,
       balance_spent_usd, reserved_usd
FROM key_budgets WHERE key_name = :key
"""
# Month rollover and leaked reservations are folded into the same statement that checks the
# limits, so the check and the increment are one atomic step.
_SPENT = "(CASE WHEN month = :month THEN month_spent_usd ELSE 0 END)"
_RESERVED = "(CASE WHEN reserved_at < :stale THEN 0 ELSE reserved_usd END)"
RESERVE = f"""
UPDATE key_budgets SET
    month_spent_usd = {_SPENT},
    month = :month,
    reserved_usd = {_RESERVED} + :amount,
    reserved_at = :now
WHERE key_name = :key
  AND (:cap IS NULL OR {_SPENT} + {_RESERVED} + :amount <= :cap + 1e-9)
  AND (:credit IS NULL OR balance_spent_usd + {_RESERVED} + :amount <= :credit + 1e-9)
RETURNING {BUDGET_COLUMNS}
"""
APPLY_SPEND = f"""
UPDATE key_budgets SET
    month_spent_usd = {_SPENT} + :spent,
    month = :month,
    balance_spent_usd = balance_spent_usd + :balance,
    reserved_usd = max(0.0, reserved_usd - :released),
    reserved_at = :now
WHERE key_name = :key
"""
