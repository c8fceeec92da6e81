"""Named SQL for the SQLite ledger, balance entries and budget counters."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

from relaygate.store.ledger_records import GroupBy

LEDGER_COLUMNS = """
    id, request_id, created_at, key_name, route, model_requested, model_used, deployment, status,
    outcome, error_kind, attempts, stream, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_usd, latency_ms, upstream_ms, ttft_ms, cache_hit, attempt_log,
    cache_write_1h_tokens
"""
INSERT_ROW = f"""
INSERT INTO usage_ledger ({LEDGER_COLUMNS})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO NOTHING
"""
COUNT_ROWS = "SELECT count(*) FROM usage_ledger"
COUNT_ROWS_SINCE = "SELECT count(*) FROM usage_ledger WHERE created_at >= ?"
SELECT_BY_REQUEST = (
    f"SELECT {LEDGER_COLUMNS} FROM usage_ledger WHERE request_id = ? ORDER BY created_at"
)
SELECT_RECENT = f"SELECT {LEDGER_COLUMNS} FROM usage_ledger ORDER BY created_at DESC LIMIT ?"
SELECT_RECENT_FOR_KEY = (
    f"SELECT {LEDGER_COLUMNS} FROM usage_ledger WHERE key_name = ? ORDER BY created_at DESC LIMIT ?"
)

_GROUP_EXPRESSIONS: dict[GroupBy, str] = {
    "key": "coalesce(key_name, '(none)')",
    "model": "coalesce(model_used, model_requested, '(none)')",
    "day": "substr(created_at, 1, 10)",
}
_TOTALS = """
    count(*),
    sum(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END),
    sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cost_usd)
"""
_GROUP_QUERIES: dict[tuple[GroupBy, bool], str] = {
    (by, keyed): (
        f"SELECT {expr} AS grp, {_TOTALS} FROM usage_ledger "
        "WHERE created_at >= ? AND created_at < ?"
        + (" AND key_name = ?" if keyed else "")
        + " GROUP BY grp ORDER BY grp"
    )
    for by, expr in _GROUP_EXPRESSIONS.items()
    for keyed in (False, True)
}


def group_query(by: GroupBy, keyed: bool) -> str:
    """Totals grouped ``by``; parameters: since, until (ISO text) and, if ``keyed``, a key."""
    return _GROUP_QUERIES[(by, keyed)]


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
