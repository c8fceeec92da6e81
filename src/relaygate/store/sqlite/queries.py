"""Named SQL for the SQLite backend."""

# Constants built only from other constants (S608); "TOKEN" names are SQL, not secrets (S105).
# ruff: noqa: S608, S105

from __future__ import annotations

from relaygate.store.sql import KEY_COLUMNS

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
)
"""
SELECT_APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
INSERT_APPLIED_VERSION = "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)"

INSERT_KEY = f"""
INSERT INTO api_keys (
    id, name, key_hash, key_prefix, owner, team, allowed_models, priority, rps, burst, rpm, tpm,
    max_concurrent, monthly_budget_usd, balance_usd, expires_at, disabled, created_at, updated_at
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)
ON CONFLICT (name) DO NOTHING
RETURNING {KEY_COLUMNS}
"""
SELECT_KEY_BY_NAME = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE name = ?"
SELECT_ALL_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, name"
COUNT_KEYS = "SELECT count(*) FROM api_keys"
REVOKE_KEY = """
UPDATE api_keys SET disabled = 1, revoked_at = coalesce(revoked_at, ?), updated_at = ?
WHERE name = ?
"""
UPDATE_KEY = f"""
UPDATE api_keys SET
    owner = ?, team = ?, allowed_models = ?, priority = ?, rps = ?, burst = ?, rpm = ?, tpm = ?,
    max_concurrent = ?, monthly_budget_usd = ?, balance_usd = ?, expires_at = ?, disabled = ?,
    updated_at = ?
WHERE id = ?
RETURNING {KEY_COLUMNS}
"""

SELECT_KEYS_VERSION = "SELECT version FROM change_counters WHERE name = 'keys'"
BUMP_KEYS_VERSION = "UPDATE change_counters SET version = version + 1 WHERE name = 'keys'"

INSERT_ADMIN_TOKEN = "INSERT INTO admin_tokens (id, token_hash, created_at) VALUES (?, ?, ?)"
SELECT_ADMIN_TOKEN_HASHES = "SELECT token_hash FROM admin_tokens ORDER BY created_at"
HAS_ADMIN_TOKEN = "SELECT EXISTS (SELECT 1 FROM admin_tokens)"
IS_EMPTY = "SELECT NOT EXISTS (SELECT 1 FROM admin_tokens) AND NOT EXISTS (SELECT 1 FROM api_keys)"
