"""SQL text the SQLite and PostgreSQL backends share: the column lists the row mappers
(``records.py``, ``ledger_records.py``) read in order, and the builder of the usage-totals
queries. Statements that differ by more than their placeholders stay in each backend."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

from relaygate.store.ledger_records import GroupBy

KEY_COLUMNS = """
    id, name, key_hash, key_prefix, owner, team, allowed_models, priority, rps, burst, rpm, tpm,
    max_concurrent, monthly_budget_usd, balance_usd, expires_at, disabled, created_at, revoked_at
"""
LEDGER_COLUMNS = """
    id, request_id, created_at, key_name, route, model_requested, model_used, deployment, status,
    outcome, error_kind, attempts, stream, input_tokens, output_tokens, cache_read_tokens,
    cache_write_tokens, cost_usd, latency_ms, upstream_ms, ttft_ms, cache_hit, attempt_log,
    cache_write_1h_tokens
"""
_TOTALS = """
    count(*),
    sum(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END),
    sum(input_tokens), sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
    sum(cost_usd)
"""


def usage_group_queries(
    day: str, since: str, until: str, key: str
) -> dict[tuple[GroupBy, bool], str]:
    """Totals per group for every ``(by, keyed)``: ``day`` is the backend's expression for a
    row's UTC date, ``since``/``until``/``key`` its placeholders for those parameters."""
    expressions: dict[GroupBy, str] = {
        "key": "coalesce(key_name, '(none)')",
        "model": "coalesce(model_used, model_requested, '(none)')",
        "day": day,
    }
    return {
        (by, keyed): (
            f"SELECT {expr} AS grp, {_TOTALS} FROM usage_ledger "
            f"WHERE created_at >= {since} AND created_at < {until}"
            + (f" AND key_name = {key}" if keyed else "")
            + " GROUP BY grp ORDER BY grp"
        )
        for by, expr in expressions.items()
        for keyed in (False, True)
    }
