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
    Migration(
        2,
        "usage ledger, balance entries and budget counters",
        (
            """
            CREATE TABLE usage_ledger (
                id TEXT PRIMARY KEY,
                request_id TEXT NOT NULL,
                created_at TEXT NOT NULL,
                key_name TEXT,
                route TEXT NOT NULL,
                model_requested TEXT,
                model_used TEXT,
                deployment TEXT,
                status INTEGER NOT NULL,
                outcome TEXT NOT NULL,
                error_kind TEXT,
                attempts INTEGER NOT NULL,
                stream INTEGER NOT NULL,
                input_tokens INTEGER NOT NULL,
                output_tokens INTEGER NOT NULL,
                cache_read_tokens INTEGER NOT NULL,
                cache_write_tokens INTEGER NOT NULL,
                cost_usd REAL NOT NULL,
                latency_ms REAL NOT NULL,
                upstream_ms REAL NOT NULL,
                ttft_ms REAL,
                cache_hit INTEGER NOT NULL
            )
            """,
            "CREATE INDEX usage_ledger_created ON usage_ledger (created_at)",
            "CREATE INDEX usage_ledger_key_created ON usage_ledger (key_name, created_at)",
            "CREATE INDEX usage_ledger_request ON usage_ledger (request_id)",
            """
            CREATE TABLE balance_entries (
                id TEXT PRIMARY KEY,
                key_name TEXT NOT NULL,
                amount_usd REAL NOT NULL,
                kind TEXT NOT NULL,
                note TEXT,
                created_at TEXT NOT NULL
            )
            """,
            "CREATE INDEX balance_entries_key ON balance_entries (key_name, created_at)",
            """
            CREATE TABLE key_budgets (
                key_name TEXT PRIMARY KEY,
                month TEXT NOT NULL,
                month_spent_usd REAL NOT NULL DEFAULT 0,
                balance_spent_usd REAL NOT NULL DEFAULT 0,
                reserved_usd REAL NOT NULL DEFAULT 0,
                reserved_at TEXT NOT NULL
            )
            """,
        ),
    ),
    Migration(
        3,
        "every upstream attempt of a request in the ledger",
        ("ALTER TABLE usage_ledger ADD COLUMN attempt_log TEXT NOT NULL DEFAULT ''",),
    ),
    Migration(
        4,
        "cache writes to the 1-hour cache, a part of cache_write_tokens priced apart",
        ("ALTER TABLE usage_ledger ADD COLUMN cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0",),
    ),
    Migration(
        5,
        "cost attribution: the end user and the tags (a JSON object) of each request",
        (
            "ALTER TABLE usage_ledger ADD COLUMN end_user TEXT",
            "ALTER TABLE usage_ledger ADD COLUMN tags TEXT",
            "CREATE INDEX usage_ledger_user_created ON usage_ledger (end_user, created_at)",
        ),
    ),
    Migration(
        6,
        "extraction pipeline jobs",
        (
            """
            CREATE TABLE pipeline_jobs (
                id TEXT PRIMARY KEY,
                pipeline TEXT NOT NULL,
                event_id TEXT NOT NULL,
                key_name TEXT,
                status TEXT NOT NULL,
                data TEXT NOT NULL,
                callback_url TEXT,
                attempts INTEGER NOT NULL DEFAULT 0,
                max_attempts INTEGER NOT NULL,
                run_after TEXT NOT NULL,
                lease_token TEXT,
                lease_expires_at TEXT,
                result TEXT,
                validity TEXT,
                error TEXT,
                errors TEXT NOT NULL DEFAULT '[]',
                cost_usd REAL NOT NULL DEFAULT 0,
                input_tokens INTEGER NOT NULL DEFAULT 0,
                output_tokens INTEGER NOT NULL DEFAULT 0,
                callback_status TEXT,
                callback_attempts INTEGER NOT NULL DEFAULT 0,
                callback_error TEXT,
                created_at TEXT NOT NULL,
                started_at TEXT,
                finished_at TEXT,
                UNIQUE (pipeline, event_id)
            )
            """,
            "CREATE INDEX pipeline_jobs_due ON pipeline_jobs (pipeline, status, run_after)",
            "CREATE INDEX pipeline_jobs_list ON pipeline_jobs (pipeline, status, id)",
        ),
    ),
    Migration(
        7,
        "the end-user index holds only rows that name an end user",
        (
            # Most rows name none, and every index entry is paid on the ledger's insert. The
            # queries that read it filter on ``end_user = ?``, which implies the condition.
            "DROP INDEX usage_ledger_user_created",
            """
            CREATE INDEX usage_ledger_user_created ON usage_ledger (end_user, created_at)
            WHERE end_user IS NOT NULL
            """,
        ),
    ),
)
