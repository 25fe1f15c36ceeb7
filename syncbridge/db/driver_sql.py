"""PostgreSQL statements of the hot paths (enqueue, claim, success), run through psycopg (see
``db/driver.py``).

``{now}`` is the database's ``now()`` with the system clock, else the injected clock's value as
the parameter ``now`` (see ``StoreBase.uses_database_clock``).
"""

from __future__ import annotations

from syncbridge.db.notify import CHANNEL
from syncbridge.models import JOB_FIELDS

JOB_COLUMNS = ", ".join(JOB_FIELDS)

_NEW_JOB = """
    INSERT INTO jobs (job_type, entity_id, payload, state, attempt, budget_start, max_retries,
                      timeout_seconds, next_run_at, correlation_id, idempotency_key, params_hash,
                      created_at, updated_at)
    VALUES (%(job_type)s, %(entity_id)s, %(payload)s::json, 'pending', 0, 0, %(max_retries)s,
            %(timeout_seconds)s, COALESCE(%(run_at)s, {now}), %(correlation_id)s,
            %(idempotency_key)s, %(params_hash)s, {now}, {now})
    ON CONFLICT DO NOTHING
    RETURNING id, job_type, next_run_at, created_at"""
_WAKE_UP = f"SELECT id, next_run_at, created_at, pg_notify('{CHANNEL}', job_type) FROM inserted"

# One job in one autocommitted statement: the new row's id and times, and the wake-up (sent at
# commit); no row when the entity already has an active job or the key is taken.
INSERT_ONE = f"""
WITH inserted AS ({_NEW_JOB}
)
{_WAKE_UP}
"""

# A new job with an idempotency key, and the key's record (``idempotency_keys``), in one
# statement. A key given before (to this entity's active job, or another's) makes the second
# insert fail, and with it the whole statement: nothing is written and the slow path answers.
INSERT_ONE_KEYED = f"""
WITH inserted AS ({_NEW_JOB}
), recorded AS (
    INSERT INTO idempotency_keys (key, job_id, params_hash, created_at)
    SELECT %(idempotency_key)s, id, %(params_hash)s, created_at FROM inserted
)
{_WAKE_UP}
"""

# Bulk, first statement of the transaction: its "now" (constant for the whole transaction, so
# the rows written with this value carry exactly what now() would write), ids for every row in
# request order, and one wake-up per job type (sent only if the transaction commits). The
# sequence is looked up once (a scalar subquery): looked up per row it costs 2.5 µs a row.
NOTIFY_TYPES = f"""
SELECT count(*) FROM unnest(%(job_types)s::text[]) AS t(job_type), pg_notify('{CHANNEL}', job_type)
"""
RESERVE = f"""
SELECT now(),
       ARRAY(SELECT nextval((SELECT pg_get_serial_sequence('jobs', 'id')::regclass))
             FROM generate_series(1, %(count)s)),
       ({NOTIFY_TYPES.strip()})
"""

# Bulk, second statement: the rows straight into the table. Any row that meets an active job
# of its entity or a used key fails the whole COPY (the unique indexes decide, as for INSERT);
# the chunk then goes through STAGE / INSERT_STAGED instead. attempt and budget_start take
# their column defaults (0).
COPY_JOBS = """
COPY jobs (id, job_type, entity_id, payload, state, max_retries, timeout_seconds,
           next_run_at, correlation_id, idempotency_key, params_hash, created_at, updated_at)
FROM STDIN
"""

# Bulk, third statement when any request has a key: each key's record, for the jobs just
# copied. A key given before (even to another entity's job) fails it, and with it the chunk,
# which then goes through the conflict-aware path.
COPY_KEYS = """
COPY idempotency_keys (key, job_id, params_hash, created_at) FROM STDIN
"""

# Bulk, before anything is written: the records of the batch's keys that were given before.
KEY_RECORDS = """
SELECT job_id, key, params_hash FROM idempotency_keys WHERE key = ANY(%(keys)s::text[])
"""

# Bulk when some row conflicts: a staging table per session, emptied at every commit, then one
# INSERT .. ON CONFLICT DO NOTHING in request order, and NOTIFY_TYPES for what it inserted.
STAGING_TABLE = """
CREATE TEMP TABLE IF NOT EXISTS syncbridge_enqueue_staging (
    ord integer, job_type text, entity_id text, payload json, max_retries integer,
    timeout_seconds integer, run_at timestamptz, correlation_id text, idempotency_key text,
    params_hash text
) ON COMMIT DELETE ROWS
"""
COPY_STAGING = """
COPY syncbridge_enqueue_staging (ord, job_type, entity_id, payload, max_retries, timeout_seconds,
                                 run_at, correlation_id, idempotency_key, params_hash) FROM STDIN
"""
INSERT_STAGED = """
INSERT INTO jobs (job_type, entity_id, payload, state, attempt, budget_start, max_retries,
                  timeout_seconds, next_run_at, correlation_id, idempotency_key, params_hash,
                  created_at, updated_at)
SELECT job_type, entity_id, payload, 'pending', 0, 0, max_retries, timeout_seconds,
       COALESCE(run_at, {now}), correlation_id, idempotency_key, params_hash, {now}, {now}
FROM syncbridge_enqueue_staging ORDER BY ord
ON CONFLICT DO NOTHING
RETURNING id, job_type, entity_id, next_run_at, created_at
"""


# Claim, in one autocommitted statement: lock up to ``limit`` due jobs (materialized: an
# inlined subquery can be re-run by the planner and lock, and so claim, more rows than the
# limit), start their next attempt under this worker's lease, open the attempt rows. Rows come
# back in ``Job`` field order. ``{lease_until}`` is now plus ``lease`` seconds.
CLAIM = """
WITH due AS MATERIALIZED (
    SELECT id FROM jobs
    WHERE state = 'pending' AND next_run_at <= {now} AND job_type = ANY(%(types)s::text[])
      AND isolate = %(isolated)s
    ORDER BY next_run_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs
    SET state = 'running', attempt = jobs.attempt + 1, lease_owner = %(worker)s,
        lease_expires_at = {lease_until}, updated_at = {now}
    FROM due
    WHERE jobs.id = due.id AND jobs.state = 'pending'
    RETURNING jobs.*
), opened AS (
    INSERT INTO attempts (job_id, number, worker_id, started_at, outcome)
    SELECT id, attempt, lease_owner, updated_at, 'running' FROM claimed
)
SELECT {columns} FROM claimed
"""
# What CLAIM returns: every column (``Job``), or what a worker runs a job with (``ClaimedJob``).
CLAIM_ALL = CLAIM.replace("{columns}", JOB_COLUMNS)
CLAIM_TO_RUN = CLAIM.replace(
    "{columns}",
    "id, job_type, entity_id, payload, attempt, timeout_seconds, isolate, correlation_id,"
    " COALESCE(lineage_id, id), updated_at, next_run_at",
)

# A batch of plain successes in one statement. The job's fence (id, attempt, owner, running) is
# the UPDATE's WHERE; each row names its owner by its place in the (short) list of owners, so
# that only integer arrays grow with the batch (see ``driver.int_array``). The attempt rows and
# ledger rows are written only for the attempts that UPDATE changed (a stale report of an
# earlier attempt of the same job in the same batch files nothing), and only for effects of the
# job's own lineage (``jobtypes.made_by_lineage``; ``effect_lineages``: each key's, or NULL).
# A job with ``follow_up`` set is not touched: its follow-up job must be enqueued in the same
# transaction, which the general path does.
# "(state = 'running') IS TRUE" is "state = 'running'" that the planner cannot match to the
# partial lease index: with statistics taken when few jobs ran, it would scan every running
# job's index entry (dead ones too) per batch instead of looking the batch up by id; measured:
# 258 ms for 400 rows instead of 5 ms.
SUCCEED_MANY = """
WITH fence AS (
    SELECT f.id, f.attempt, (%(owners)s::text[])[f.owner_slot] AS owner
    FROM unnest(%(ids)s::bigint[], %(attempts)s::integer[], %(owner_slots)s::integer[])
         AS f(id, attempt, owner_slot)
), done AS (
    UPDATE jobs
    SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL, isolate = false,
        updated_at = {now}, finished_at = {now}
    FROM fence
    WHERE jobs.id = fence.id AND jobs.attempt = fence.attempt AND jobs.lease_owner = fence.owner
      AND (jobs.state = 'running') IS TRUE AND NOT jobs.follow_up AND NOT jobs.cancel_requested
    RETURNING jobs.id, jobs.attempt, COALESCE(jobs.lineage_id, jobs.id) AS lineage_id
), closed AS (
    UPDATE attempts SET finished_at = {now}, outcome = 'succeeded'
    FROM done
    WHERE attempts.job_id = done.id AND attempts.number = done.attempt
), effects AS (
    INSERT INTO ledger (effect_key, job_id, lineage_id, upstream, upstream_ref, applied_at)
    SELECT e.effect_key, done.id, done.lineage_id, e.upstream, e.upstream_ref, {now}
    FROM unnest(%(effect_jobs)s::bigint[], %(effect_attempts)s::integer[],
                %(effect_keys)s::text[], %(effect_upstreams)s::text[], %(effect_refs)s::text[],
                %(effect_lineages)s::bigint[])
         AS e(job_id, attempt, effect_key, upstream, upstream_ref, key_lineage)
    JOIN done ON done.id = e.job_id AND done.attempt = e.attempt
    WHERE e.key_lineage IS NULL OR e.key_lineage = done.lineage_id
    ON CONFLICT DO NOTHING
)
SELECT id, attempt FROM done
"""


def with_clock(statement: str, database_clock: bool) -> str:
    """``statement`` reading "now" from the database, or from the injected clock's parameters
    ``now`` and ``lease_until``."""
    if database_clock:
        return statement.replace("{now}", "now()").replace(
            "{lease_until}", "now() + %(lease)s * interval '1 second'"
        )
    return statement.replace("{now}", "%(now)s::timestamptz").replace(
        "{lease_until}", "%(lease_until)s::timestamptz"
    )
