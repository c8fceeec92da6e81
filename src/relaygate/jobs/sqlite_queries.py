"""Named SQL for the SQLite job store (times are UTC ISO text, JSON is text)."""

# Constants built only from other constants (S608).
# ruff: noqa: S608

from __future__ import annotations

from relaygate.jobs.records import JOB_COLUMNS, LEASE_EXPIRED

INSERT = """
INSERT INTO pipeline_jobs (id, pipeline, event_id, key_name, status, data, callback_url,
    max_attempts, run_after, created_at)
VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)
ON CONFLICT (pipeline, event_id) DO NOTHING
"""
SELECT_BY_ID = f"SELECT {JOB_COLUMNS} FROM pipeline_jobs WHERE id = ?"


def select_by_events(count: int) -> str:
    """The jobs of ``count`` (pipeline, event_id) pairs, given as 2 x ``count`` parameters."""
    pairs = ", ".join(["(?, ?)"] * count)
    return f"SELECT {JOB_COLUMNS} FROM pipeline_jobs WHERE (pipeline, event_id) IN (VALUES {pairs})"


# A running job whose lease expired on its last attempt: dead, with the lost attempt's error.
BURY_EXPIRED = f"""
UPDATE pipeline_jobs SET status = 'dead', error = '{LEASE_EXPIRED}',
    errors = json_insert(errors, '$[#]', 'attempt ' || attempts || ': {LEASE_EXPIRED}'),
    finished_at = ?1, lease_token = NULL,
    callback_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END
WHERE pipeline = ?2 AND status = 'running' AND lease_expires_at <= ?1
    AND attempts >= max_attempts
"""
# One statement: pick the due rows and lease them, each with a fresh random token.
CLAIM = f"""
UPDATE pipeline_jobs SET
    errors = CASE WHEN status = 'running'
        THEN json_insert(errors, '$[#]', 'attempt ' || attempts || ': {LEASE_EXPIRED}')
        ELSE errors END,
    error = CASE WHEN status = 'running' THEN '{LEASE_EXPIRED}' ELSE error END,
    status = 'running', attempts = attempts + 1, lease_token = lower(hex(randomblob(16))),
    lease_expires_at = ?3, started_at = coalesce(started_at, ?2)
WHERE id IN (
    SELECT id FROM pipeline_jobs
    WHERE pipeline = ?1 AND (
        (status IN ('queued', 'failed') AND run_after <= ?2)
        OR (status = 'running' AND lease_expires_at <= ?2)
    )
    ORDER BY run_after, id LIMIT ?4
)
RETURNING {JOB_COLUMNS}
"""
RENEW = """
UPDATE pipeline_jobs SET lease_expires_at = ?
WHERE id = ? AND lease_token = ? AND status = 'running'
"""


def _rows_of_json(*names: str) -> str:
    """Parameter ?1, a JSON array of arrays, as a table ``o`` with the columns ``names``."""
    columns = ", ".join(f"json_extract(value, '$[{i}]') AS {name}" for i, name in enumerate(names))
    return f"(SELECT {columns} FROM json_each(?1)) AS o"


# Group commits: one statement per kind of outcome. ?1 is a JSON array with one array per
# attempt (JSON values travel as text inside it), each row fenced by its own lease token.
_USAGE = ("spent", "tokens_in", "tokens_out")
_SUCCESSES = _rows_of_json("job_id", "token", "new_result", "new_validity", *_USAGE)
_FAILURES = _rows_of_json("job_id", "token", "new_error", *_USAGE, "retry_at")
SUCCEED_MANY = f"""
UPDATE pipeline_jobs SET status = 'succeeded', result = o.new_result, validity = o.new_validity,
    error = NULL, cost_usd = cost_usd + o.spent, input_tokens = input_tokens + o.tokens_in,
    output_tokens = output_tokens + o.tokens_out, finished_at = ?2, lease_token = NULL,
    lease_expires_at = NULL,
    callback_status = CASE WHEN callback_url IS NULL THEN NULL ELSE 'pending' END
FROM {_SUCCESSES}
WHERE pipeline_jobs.id = o.job_id AND pipeline_jobs.lease_token = o.token
    AND pipeline_jobs.status = 'running'
RETURNING {JOB_COLUMNS}
"""
FAIL_MANY = f"""
UPDATE pipeline_jobs SET
    status = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'failed' END,
    error = o.new_error,
    errors = json_insert(errors, '$[#]', 'attempt ' || attempts || ': ' || o.new_error),
    cost_usd = cost_usd + o.spent, input_tokens = input_tokens + o.tokens_in,
    output_tokens = output_tokens + o.tokens_out,
    finished_at = CASE WHEN attempts >= max_attempts THEN ?2 ELSE NULL END,
    run_after = o.retry_at, lease_token = NULL, lease_expires_at = NULL,
    callback_status = CASE WHEN attempts >= max_attempts AND callback_url IS NOT NULL
        THEN 'pending' ELSE NULL END
FROM {_FAILURES}
WHERE pipeline_jobs.id = o.job_id AND pipeline_jobs.lease_token = o.token
    AND pipeline_jobs.status = 'running'
RETURNING {JOB_COLUMNS}
"""
RELEASE = """
UPDATE pipeline_jobs SET status = 'queued', attempts = attempts - 1, run_after = ?,
    lease_token = NULL, lease_expires_at = NULL
WHERE id = ? AND lease_token = ? AND status = 'running'
"""
REQUEUE = f"""
UPDATE pipeline_jobs SET status = 'queued', attempts = 0, run_after = ?, finished_at = NULL,
    callback_status = NULL, callback_attempts = 0, callback_error = NULL
WHERE id = ? AND status IN ('dead', 'failed')
RETURNING {JOB_COLUMNS}
"""
COUNT_BY_STATUS = "SELECT pipeline, status, count(*) FROM pipeline_jobs GROUP BY pipeline, status"
SELECT_PENDING_CALLBACKS = (
    f"SELECT {JOB_COLUMNS} FROM pipeline_jobs WHERE callback_status = 'pending' ORDER BY id LIMIT ?"
)
RECORD_CALLBACK = """
UPDATE pipeline_jobs SET callback_status = ?, callback_attempts = ?, callback_error = ?
WHERE id = ?
"""


def list_query(*, status: bool, key: bool, cursor: bool) -> str:
    """Newest first; parameters: pipeline, then status, key name and cursor when asked, limit."""
    where = ["pipeline = ?"]
    where += ["status = ?"] if status else []
    where += ["key_name = ?"] if key else []
    where += ["id < ?"] if cursor else []
    return (
        f"SELECT {JOB_COLUMNS} FROM pipeline_jobs WHERE {' AND '.join(where)} "
        "ORDER BY id DESC LIMIT ?"
    )
