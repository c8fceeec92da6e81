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
# Statements that join ``pipeline_jobs AS j`` to other rows return its columns qualified.
_RETURNING_J = "RETURNING " + ", ".join(f"j.{column}" for column in COLUMNS.split(", "))

# The unique (pipeline, event_id) constraint makes a concurrent duplicate wait for the first
# insert's commit and then do nothing, on any number of processes. Rows go in the order given
# (sorted by the caller), so two batches sharing events lock them in one order: no deadlock.
INSERT_MANY = f"""
INSERT INTO pipeline_jobs (id, pipeline, event_id, key_name, status, data, callback_url,
    max_attempts, run_after, created_at)
SELECT n.id, n.pipeline, n.event_id, n.key_name, 'queued', n.data::jsonb, n.callback_url,
    n.max_attempts, $8, $8
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[])
    WITH ORDINALITY AS n(id, pipeline, event_id, key_name, data, callback_url, max_attempts, ord)
ORDER BY n.ord
ON CONFLICT (pipeline, event_id) DO NOTHING
RETURNING {COLUMNS}
"""
SELECT_BY_EVENTS = f"""
SELECT {COLUMNS} FROM pipeline_jobs
WHERE (pipeline, event_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))
"""
SELECT_BY_ID = f"SELECT {COLUMNS} FROM pipeline_jobs WHERE id = $1"

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
{_RETURNING_J}
"""
RENEW = """
UPDATE pipeline_jobs SET lease_expires_at = $1
WHERE id = $2 AND lease_token = $3 AND status = 'running'
"""
# Group commits: one statement per kind of outcome, each row fenced by its own lease token.
SUCCEED_MANY = f"""
UPDATE pipeline_jobs AS j SET status = 'succeeded', result = o.result::jsonb,
    validity = o.validity, error = NULL, cost_usd = j.cost_usd + o.cost_usd,
    input_tokens = j.input_tokens + o.input_tokens,
    output_tokens = j.output_tokens + o.output_tokens, finished_at = $8, lease_token = NULL,
    lease_expires_at = NULL,
    callback_status = CASE WHEN j.callback_url IS NULL THEN NULL ELSE 'pending' END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::float8[], $6::bigint[],
    $7::bigint[]) AS o(id, token, result, validity, cost_usd, input_tokens, output_tokens)
WHERE j.id = o.id AND j.lease_token = o.token AND j.status = 'running'
{_RETURNING_J}
"""
FAIL_MANY = f"""
UPDATE pipeline_jobs AS j SET
    status = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'failed' END,
    error = o.error, errors = j.errors || to_jsonb('attempt ' || j.attempts || ': ' || o.error),
    cost_usd = j.cost_usd + o.cost_usd, input_tokens = j.input_tokens + o.input_tokens,
    output_tokens = j.output_tokens + o.output_tokens,
    finished_at = CASE WHEN j.attempts >= j.max_attempts THEN $8::timestamptz ELSE NULL END,
    run_after = o.retry_at, lease_token = NULL, lease_expires_at = NULL,
    callback_status = CASE WHEN j.attempts >= j.max_attempts AND j.callback_url IS NOT NULL
        THEN 'pending' ELSE NULL END
FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::bigint[], $6::bigint[],
    $7::timestamptz[]) AS o(id, token, error, cost_usd, input_tokens, output_tokens, retry_at)
WHERE j.id = o.id AND j.lease_token = o.token AND j.status = 'running'
{_RETURNING_J}
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
