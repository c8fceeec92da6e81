"""PostgreSQL schema migrations. Append new ones; never edit an applied one."""

from __future__ import annotations

from relaygate.store.migrations import Migration

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "keys and admin tokens",
        (
            """
            CREATE TABLE api_keys (
                id uuid PRIMARY KEY,
                name text NOT NULL UNIQUE,
                key_hash text NOT NULL UNIQUE,
                key_prefix text NOT NULL,
                owner text,
                team text,
                allowed_models text[] NOT NULL DEFAULT '{}',
                priority integer NOT NULL DEFAULT 0,
                rps double precision,
                burst integer,
                rpm integer,
                tpm bigint,
                max_concurrent integer,
                monthly_budget_usd numeric(20, 8),
                balance_usd numeric(20, 8),
                expires_at timestamptz,
                disabled boolean NOT NULL DEFAULT false,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                revoked_at timestamptz
            )
            """,
            """
            CREATE TABLE admin_tokens (
                id uuid PRIMARY KEY,
                token_hash text NOT NULL UNIQUE,
                created_at timestamptz NOT NULL
            )
            """,
            """
            CREATE TABLE change_counters (
                name text PRIMARY KEY,
                version bigint NOT NULL
            )
            """,
            "INSERT INTO change_counters (name, version) VALUES ('keys', 0)",
        ),
    ),
)
