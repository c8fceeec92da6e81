"""SQLite schema migrations. Append new ones; never edit an applied one.

Timestamps are ISO-8601 text in UTC (sortable as text); ``allowed_models`` is a JSON array.
"""

from __future__ import annotations

from relaygate.store.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "keys and admin tokens",
        (
            """
            CREATE TABLE api_keys (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                key_hash TEXT NOT NULL UNIQUE,
                key_prefix TEXT NOT NULL,
                owner TEXT,
                team TEXT,
                allowed_models TEXT NOT NULL DEFAULT '[]',
                priority INTEGER NOT NULL DEFAULT 0,
                rps REAL,
                burst INTEGER,
                rpm INTEGER,
                tpm INTEGER,
                max_concurrent INTEGER,
                monthly_budget_usd REAL,
                balance_usd REAL,
                expires_at TEXT,
                disabled INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                revoked_at TEXT
            )
            """,
            """
            CREATE TABLE admin_tokens (
                id TEXT PRIMARY KEY,
                token_hash TEXT NOT NULL UNIQUE,
                created_at TEXT NOT NULL
            )
            """,
            """
            CREATE TABLE change_counters (
                name TEXT PRIMARY KEY,
                version INTEGER NOT NULL
            )
            """,
            "INSERT INTO change_counters (name, version) VALUES ('keys', 0)",
        ),
    ),
)
