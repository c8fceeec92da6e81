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
    Migration(
        2,
        "usage ledger, balance entries and budget counters",
        (
            """
            CREATE TABLE usage_ledger (
                id text PRIMARY KEY,
                request_id text NOT NULL,
                created_at timestamptz NOT NULL,
                key_name text,
                route text NOT NULL,
                model_requested text,
                model_used text,
                deployment text,
                status integer NOT NULL,
                outcome text NOT NULL,
                error_kind text,
                attempts integer NOT NULL,
                stream boolean NOT NULL,
                input_tokens bigint NOT NULL,
                output_tokens bigint NOT NULL,
                cache_read_tokens bigint NOT NULL,
                cache_write_tokens bigint NOT NULL,
                cost_usd double precision NOT NULL,
                latency_ms double precision NOT NULL,
                upstream_ms double precision NOT NULL,
                ttft_ms double precision,
                cache_hit boolean NOT NULL
            )
            """,
            "CREATE INDEX usage_ledger_created ON usage_ledger (created_at)",
            "CREATE INDEX usage_ledger_key_created ON usage_ledger (key_name, created_at)",
            "CREATE INDEX usage_ledger_request ON usage_ledger (request_id)",
            """
            CREATE TABLE balance_entries (
                id uuid PRIMARY KEY,
                key_name text NOT NULL,
                amount_usd numeric(20, 8) NOT NULL,
                kind text NOT NULL,
                note text,
                created_at timestamptz NOT NULL
            )
            """,
            "CREATE INDEX balance_entries_key ON balance_entries (key_name, created_at)",
            """
            CREATE TABLE key_budgets (
                key_name text PRIMARY KEY,
                month text NOT NULL,
                month_spent_usd double precision NOT NULL DEFAULT 0,
                balance_spent_usd double precision NOT NULL DEFAULT 0,
                reserved_usd double precision NOT NULL DEFAULT 0,
                reserved_at timestamptz NOT NULL
            )
            """,
        ),
    ),
    Migration(
        3,
        "every upstream attempt of a request in the ledger",
        ("ALTER TABLE usage_ledger ADD COLUMN attempt_log text NOT NULL DEFAULT ''",),
    ),
    Migration(
        4,
        "cache writes to the 1-hour cache, a part of cache_write_tokens priced apart",
        ("ALTER TABLE usage_ledger ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0",),
    ),
    Migration(
        5,
        "cost attribution: the end user and the tags (jsonb) of each request",
        (
            "ALTER TABLE usage_ledger ADD COLUMN end_user text",
            "ALTER TABLE usage_ledger ADD COLUMN tags jsonb",
            "CREATE INDEX usage_ledger_user_created ON usage_ledger (end_user, created_at)",
            "CREATE INDEX usage_ledger_tags ON usage_ledger USING gin (tags jsonb_path_ops)",
        ),
    ),
    Migration(
        6,
        "extraction pipeline jobs",
        (
            """
            CREATE TABLE pipeline_jobs (
                id text PRIMARY KEY,
                pipeline text NOT NULL,
                event_id text NOT NULL,
                key_name text,
                status text NOT NULL,
                data jsonb NOT NULL,
                callback_url text,
                attempts integer NOT NULL DEFAULT 0,
                max_attempts integer NOT NULL,
                run_after timestamptz NOT NULL,
                lease_token text,
                lease_expires_at timestamptz,
                result jsonb,
                validity text,
                error text,
                errors jsonb NOT NULL DEFAULT '[]',
                cost_usd double precision NOT NULL DEFAULT 0,
                input_tokens bigint NOT NULL DEFAULT 0,
                output_tokens bigint NOT NULL DEFAULT 0,
                callback_status text,
                callback_attempts integer NOT NULL DEFAULT 0,
                callback_error text,
                created_at timestamptz NOT NULL,
                started_at timestamptz,
                finished_at timestamptz,
                UNIQUE (pipeline, event_id)
            )
            """,
            "CREATE INDEX pipeline_jobs_due ON pipeline_jobs (pipeline, status, run_after)",
            "CREATE INDEX pipeline_jobs_list ON pipeline_jobs (pipeline, status, id)",
        ),
    ),
    Migration(
        7,
        "the end-user and tag indexes hold only rows that name an end user or carry tags",
        (
            # As on SQLite: most rows have neither, and the queries that read these indexes
            # (``end_user = $n``, ``tags @> $n``: strict operators) imply the conditions.
            "DROP INDEX usage_ledger_user_created",
            """
            CREATE INDEX usage_ledger_user_created ON usage_ledger (end_user, created_at)
            WHERE end_user IS NOT NULL
            """,
            "DROP INDEX usage_ledger_tags",
            """
            CREATE INDEX usage_ledger_tags ON usage_ledger USING gin (tags jsonb_path_ops)
            WHERE tags IS NOT NULL
            """,
        ),
    ),
)
