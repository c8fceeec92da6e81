"""Named SQL for the PostgreSQL job store."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

from relaygate.jobs.records import JOB_COLUMNS, LEASE_EXPIRED

# ``data``, ``result`` and ``errors`` are jsonb; they travel as text both ways.
COLUMNS = (
    JOB_COLUMNS.replace(" data,", " data::text,")
    .replace(" result,", " result::text,")
    .replace(" errors,", " errors::text,")
)

# The unique (pipeline, event_id) constraint makes a concurrent duplicate wait for the first
# insert's commit and then do nothing, on any number of processes.
INSERT = f"""
INSERT INTO pipeline_jobs (id, pipeline, event_id, key_name, status, data, callback_url,
    max_attempts, run_after, created_at)
VALUES ($1, $2, $3, $4, 'queued', $5::jsonb, $6, $7, $8, $8)
ON CONFLICT (pipeline, event_id) DO NOTHING
RETURNING {COLUMNS}
"""
SELECT_BY_ID = f"SELECT {COLUMNS} FROM pipeline_jobs WHERE id = $1"
SELECT_BY_EVENT = f"SELECT {COLUMNS} FROM pipeline_jobs WHERE pipeline = $1 AND event_id = $2"

_LOST = f"'attempt ' || attempts || ': {LEASE_EXPIRED}'"
BURY_EXPIRED = f"""
UPDATE pipeline_jobs SET status = 'dead', error = '{LEASE_EXPIRED}',
    errors = errors || to_jsonb({_LOST}), finished_at = $1, lease_token = NULL,
    callback_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END
WHERE id IN (
    SELECT id FROM pipeline_jobs
    WHERE pipeline = $2 AND status = 'running' AND lease_expires_at <= $1
        AND attempts >= max_attempts
    FOR UPDATE SKIP LOCKED
)
"""
# One statement: pick due rows no other worker holds, and lease them with fresh tokens.
CLAIM = f"""
UPDATE pipeline_jobs AS j SET
    errors = CASE WHEN j.status = 'running' THEN j.errors || to_jsonb(
        'attempt ' || j.attempts || ': {LEASE_EXPIRED}') ELSE j.errors END,
    error = CASE WHEN j.status = 'running' THEN '{LEASE_EXPIRED}' ELSE j.error END,
    status = 'running', attempts = j.attempts + 1, lease_token = md5(random()::text || j.id),
    lease_expires_at = $3, started_at = coalesce(j.started_at, $2)
FROM (
    SELECT id FROM pipeline_jobs
    WHERE pipeline = $1 AND (
        (status IN ('queued', 'failed') AND run_after <= $2)
        OR (status = 'running' AND lease_expires_at <= $2 AND attempts < max_attempts)
    )
    ORDER BY run_after, id LIMIT $4
    FOR UPDATE SKIP LOCKED
) AS due
WHERE j.id = due.id
RETURNING {COLUMNS.replace("id, ", "j.id, ", 1)}
"""
RENEW = """
UPDATE pipeline_jobs SET lease_expires_at = $1
WHERE id = $2 AND lease_token = $3 AND status = 'running'
"""
SUCCEED = f"""
UPDATE pipeline_jobs SET status = 'succeeded', result = $1::jsonb, validity = $2, error = NULL,
    cost_usd = cost_usd + $3, input_tokens = input_tokens + $4,
    output_tokens = output_tokens + $5, finished_at = $6, lease_token = NULL,
    lease_expires_at = NULL,
    callback_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END
WHERE id = $7 AND lease_token = $8 AND status = 'running'
RETURNING {COLUMNS}
"""
FAIL = f"""
UPDATE pipeline_jobs SET
    status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END,
    error = $1, errors = errors || to_jsonb('attempt ' || attempts || ': ' || $1::text),
    cost_usd = cost_usd + $2, input_tokens = input_tokens + $3, output_tokens = output_tokens + $4,
    finished_at = CASE WHEN attempts >= max_attempts THEN $5::timestamptz ELSE NULL END,
    run_after = $6, lease_token = NULL, lease_expires_at = NULL,
    callback_status = CASE WHEN attempts >= max_attempts AND callback_url IS NOT NULL
        THEN 'pending' ELSE NULL END
WHERE id = $7 AND lease_token = $8 AND status = 'running'
RETURNING {COLUMNS}
"""
RELEASE = """
UPDATE pipeline_jobs SET status = 'queued', attempts = attempts - 1, run_after = $1,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = $2 AND lease_token = $3 AND status = 'running'
"""
REQUEUE = f"""
UPDATE pipeline_jobs SET status = 'queued', attempts = 0, run_after = $1, finished_at = NULL,
    callback_status = NULL, callback_attempts = 0, callback_error = NULL
WHERE id = $2 AND status IN ('dead', 'failed')
RETURNING {COLUMNS}
"""
COUNT_BY_STATUS = "SELECT pipeline, status, count(*) FROM pipeline_jobs GROUP BY pipeline, status"
SELECT_PENDING_CALLBACKS = (
    f"SELECT {COLUMNS} FROM pipeline_jobs WHERE callback_status = 'pending' ORDER BY id LIMIT $1"
)
RECORD_CALLBACK = """
UPDATE pipeline_jobs SET callback_status = $1, callback_attempts = $2, callback_error = $3
WHERE id = $4
"""


def list_query(*, status: bool, key: bool, cursor: bool) -> str:
    """Newest first; parameters: pipeline, then status, key name and cursor when asked, limit."""
    where = ["pipeline = $1"]
    for column, wanted in (("status = ", status), ("key_name = ", key), ("id < ", cursor)):
        if wanted:
            where.append(f"{column}${len(where) + 1}")
    return (
        f"SELECT {COLUMNS} FROM pipeline_jobs WHERE {' AND '.join(where)} "
        f"ORDER BY id DESC LIMIT ${len(where) + 1}"
    )
