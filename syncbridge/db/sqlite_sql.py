"""SQLite statements of the hot paths (bulk enqueue, claim, success), run through ``sqlite3``
(see ``db/driver.py``).

Times are stored as SQLAlchemy stores a naive UTC ``DateTime`` on SQLite, text that sorts as
time: :func:`stamp` must format exactly that way, or comparisons with stored values break.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache

from syncbridge.models import JOB_FIELDS

# Bulk enqueue, optimistic: new pending jobs with ids chosen by the caller (the largest id plus
# one onwards: it holds the write lock, so no other writer can take them). No ON CONFLICT: the
# first row that meets an active job of its entity or a used key fails the statement, and the
# caller rolls the whole batch back and takes the conflict-aware path. attempt and budget_start
# take their column defaults (0).
INSERT_JOB = """
INSERT INTO jobs (id, job_type, entity_id, payload, state, max_retries, timeout_seconds,
                  next_run_at, correlation_id, idempotency_key, params_hash, created_at,
                  updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
LAST_JOB_ID = "SELECT COALESCE(MAX(id), 0) FROM jobs"
# With INSERT_JOB, each key's record; a key given before fails it, as a used key fails INSERT_JOB.
INSERT_KEY = (
    "INSERT INTO idempotency_keys (key, job_id, params_hash, created_at) VALUES (?, ?, ?, ?)"
)

# Claim: up to ``limit`` due jobs of the given types, running under this worker's lease, in
# one statement inside the caller's BEGIN IMMEDIATE transaction. Rows in ``Job`` field order.
_CLAIM = """
WITH due AS (
    SELECT id FROM jobs
    WHERE state = 'pending' AND next_run_at <= ? AND job_type IN ({types}) AND isolate = ?
    ORDER BY next_run_at, id
    LIMIT ?
)
UPDATE jobs
SET state = 'running', attempt = jobs.attempt + 1, lease_owner = ?, lease_expires_at = ?,
    updated_at = ?
FROM due
WHERE jobs.id = due.id AND jobs.state = 'pending'
RETURNING {columns}
"""

OPEN_ATTEMPT = """
INSERT INTO attempts (job_id, number, worker_id, started_at, outcome)
VALUES (?, ?, ?, ?, 'running')
"""


# Plain successes: the fence of every job in the UPDATE's WHERE (one row value per job).
_SUCCEED_JOBS = """
UPDATE jobs
SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, isolate = 0,
    updated_at = ?, finished_at = ?
WHERE (id, attempt, lease_owner) IN (VALUES {rows}) AND state = 'running' AND NOT follow_up
  AND NOT cancel_requested
RETURNING id, attempt, COALESCE(lineage_id, id)
"""
SUCCEED_ATTEMPT = """
UPDATE attempts SET finished_at = ?, outcome = 'succeeded' WHERE job_id = ? AND number = ?
"""
# Row values per statement: three parameters each, well under SQLite's variable limit.
SUCCEED_CHUNK = 500


@cache
def succeed_jobs(count: int) -> str:
    """The success statement for ``count`` fences. Parameters: now, now, then id, attempt,
    owner of each."""
    return _SUCCEED_JOBS.format(rows=", ".join(["(?, ?, ?)"] * count))


@cache
def claim(type_count: int) -> str:
    """The claim statement for ``type_count`` job types. Parameters: now, the types, isolated,
    limit, worker, lease expiry, now."""
    return _CLAIM.format(types=", ".join("?" * type_count), columns=", ".join(JOB_FIELDS))


def stamp(value: datetime) -> str:
    """``value`` as SQLAlchemy stores it in a SQLite ``DateTime`` column (naive UTC)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
