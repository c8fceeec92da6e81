"""Named SQL for the PostgreSQL ledger, balance entries and budget counters."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

import json
from collections.abc import Callable

from relaygate.store.sql import LEDGER_COLUMNS, UsageSql

# One statement and one round trip per batch: every column travels as an array.
INSERT_ROWS = f"""
INSERT INTO usage_ledger ({LEDGER_COLUMNS})
SELECT * FROM unnest(
    $1::text[], $2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::text[], $9::integer[], $10::text[], $11::text[], $12::integer[], $13::boolean[],
    $14::bigint[], $15::bigint[], $16::bigint[], $17::bigint[], $18::float8[], $19::float8[],
    $20::float8[], $21::float8[], $22::boolean[], $23::text[], $24::bigint[], $25::text[],
    $26::jsonb[]
)
ON CONFLICT (id) DO NOTHING
"""
COUNT_ROWS = "SELECT count(*) FROM usage_ledger"
COUNT_ROWS_SINCE = "SELECT count(*) FROM usage_ledger WHERE created_at >= $1"
SELECT_BY_REQUEST = (
    f"SELECT {LEDGER_COLUMNS} FROM usage_ledger WHERE request_id = $1 ORDER BY created_at"
)


class PostgresUsageSql(UsageSql):
    """Usage totals and recent rows on PostgreSQL: ``tags`` is jsonb; a tag filter is a
    containment test the GIN index (migration 5) serves."""

    day = "to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def placeholder(self, number: int) -> str:
        return f"${number}"

    def tag_value(self, key_param: str) -> str:
        return f"(tags ->> {key_param}::text)"

    def tag_key_param(self, key: str) -> object:
        return key

    def tag_match(self, key: str, value: str, arg: Callable[[object], str]) -> str:
        return f"tags @> {arg(json.dumps({key: value}))}::jsonb"


USAGE_SQL = PostgresUsageSql()


INSERT_BALANCE_ENTRY = """
INSERT INTO balance_entries (id, key_name, amount_usd, kind, note, created_at)
VALUES ($1, $2, $3, $4, $5, $6)
"""
CREDIT_KEY = """
UPDATE api_keys SET balance_usd = coalesce(balance_usd, 0) + $1, updated_at = $2
WHERE name = $3 AND revoked_at IS NULL
"""
BUMP_KEYS_VERSION = "UPDATE change_counters SET version = version + 1 WHERE name = 'keys'"
SELECT_BALANCE_ENTRIES = """
SELECT id, key_name, amount_usd, kind, note, created_at FROM balance_entries
WHERE key_name = $1 ORDER BY created_at, id
"""

BUDGET_COLUMNS = "key_name, month, month_spent_usd, balance_spent_usd, reserved_usd"
ENSURE_BUDGET_ROW = """
INSERT INTO key_budgets (key_name, month, reserved_at) VALUES ($1, $2, now())
ON CONFLICT (key_name) DO NOTHING
"""
SELECT_BUDGETS = """
SELECT key_name, month, CASE WHEN month = $1 THEN month_spent_usd ELSE 0 END,
       balance_spent_usd, reserved_usd
FROM key_budgets ORDER BY key_name
"""
SELECT_BUDGET = """
SELECT key_name, month, CASE WHEN month = $2 THEN month_spent_usd ELSE 0 END,
       balance_spent_usd, reserved_usd
FROM key_budgets WHERE key_name = $1
"""
# The check and the increment are one statement on one row: PostgreSQL locks the row for the
# UPDATE and re-evaluates the WHERE clause on the newest version when two processes race, so
# concurrent reservations never pass the cap together. Month rollover and reservations leaked by
# a crashed process (older than the TTL, $6 seconds) are folded into the same statement.
_SPENT = "(CASE WHEN month = $2 THEN month_spent_usd ELSE 0 END)"
_RESERVED = (
    "(CASE WHEN reserved_at < now() - make_interval(secs => $6) THEN 0 ELSE reserved_usd END)"
)
RESERVE = f"""
UPDATE key_budgets SET
    month_spent_usd = {_SPENT},
    month = $2,
    reserved_usd = {_RESERVED} + $3,
    reserved_at = now()
WHERE key_name = $1
  AND ($4::float8 IS NULL OR {_SPENT} + {_RESERVED} + $3 <= $4::float8 + 1e-9)
  AND ($5::float8 IS NULL OR balance_spent_usd + {_RESERVED} + $3 <= $5::float8 + 1e-9)
RETURNING {BUDGET_COLUMNS}
"""
APPLY_SPEND = """
UPDATE key_budgets SET
    month_spent_usd = (CASE WHEN month = $2 THEN month_spent_usd ELSE 0 END) + $3,
    month = $2,
    balance_spent_usd = balance_spent_usd + $4,
    reserved_usd = greatest(0, reserved_usd - $5),
    reserved_at = now()
WHERE key_name = $1
"""
