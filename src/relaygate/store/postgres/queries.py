"""Named SQL for the PostgreSQL backend."""

# Constants built only from other constants (S608); "TOKEN" names are SQL, not secrets (S105).
# ruff: noqa: S608, S105

from __future__ import annotations

from relaygate.store.sql import KEY_COLUMNS

# Any constant works; it only has to be the same in every relaygate process.
MIGRATION_LOCK_ID = 0x7265_6C61_7967_7465  # "relaygte"

LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock($1)"
CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
INSERT_APPLIED_VERSION = "INSERT INTO schema_migrations (version) VALUES ($1)"

INSERT_KEY = f"""
INSERT INTO api_keys (
    id, name, key_hash, key_prefix, owner, team, allowed_models, priority, rps, burst, rpm, tpm,
    max_concurrent, monthly_budget_usd, balance_usd, expires_at, disabled, created_at, updated_at
) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, false, $17, $17)
ON CONFLICT (name) DO NOTHING
RETURNING {KEY_COLUMNS}
"""
SELECT_KEY_BY_NAME = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE name = $1"
SELECT_KEY_BY_NAME_FOR_UPDATE = f"SELECT {KEY_COLUMNS} FROM api_keys WHERE name = $1 FOR UPDATE"
SELECT_ALL_KEYS = f"SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, name"
COUNT_KEYS = "SELECT count(*) FROM api_keys"
REVOKE_KEY = """
UPDATE api_keys SET disabled = true, revoked_at = coalesce(revoked_at, $1), updated_at = $1
WHERE name = $2
"""
UPDATE_KEY = f"""
UPDATE api_keys SET
    owner = $1, team = $2, allowed_models = $3, priority = $4, rps = $5, burst = $6, rpm = $7,
    tpm = $8, max_concurrent = $9, monthly_budget_usd = $10, balance_usd = $11, expires_at = $12,
    disabled = $13, updated_at = $14
WHERE id = $15
RETURNING {KEY_COLUMNS}
"""

SELECT_KEYS_VERSION = "SELECT version FROM change_counters WHERE name = 'keys'"
BUMP_KEYS_VERSION = "UPDATE change_counters SET version = version + 1 WHERE name = 'keys'"

INSERT_ADMIN_TOKEN = "INSERT INTO admin_tokens (id, token_hash, created_at) VALUES ($1, $2, $3)"
SELECT_ADMIN_TOKEN_HASHES = "SELECT token_hash FROM admin_tokens ORDER BY created_at"
HAS_ADMIN_TOKEN = "SELECT EXISTS (SELECT 1 FROM admin_tokens)"
# Taken inside the bootstrap transaction so two processes starting at once cannot both bootstrap.
LOCK_COUNTERS = "SELECT version FROM change_counters WHERE name = 'keys' FOR UPDATE"
IS_EMPTY = "SELECT NOT EXISTS (SELECT 1 FROM admin_tokens) AND NOT EXISTS (SELECT 1 FROM api_keys)"
