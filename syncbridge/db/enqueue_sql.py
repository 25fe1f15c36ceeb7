"""PostgreSQL statements of the enqueue fast paths, run through psycopg (see ``db/driver.py``).

``{now}`` is the database's ``now()`` with the system clock, else the injected clock's value as
the parameter ``now`` (see ``StoreBase.uses_database_clock``).
"""

from __future__ import annotations

from syncbridge.db.notify import CHANNEL

# One job in one autocommitted statement: the new row's id and times, and the wake-up (sent at
# commit); no row when the entity already has an active job or the key is taken.
INSERT_ONE = f"""
WITH inserted AS (
    INSERT INTO jobs (job_type, entity_id, payload, state, attempt, budget_start, max_retries,
                      timeout_seconds, next_run_at, correlation_id, idempotency_key, params_hash,
                      created_at, updated_at)
    VALUES (%(job_type)s, %(entity_id)s, %(payload)s::json, 'pending', 0, 0, %(max_retries)s,
            %(timeout_seconds)s, COALESCE(%(run_at)s, {{now}}), %(correlation_id)s,
            %(idempotency_key)s, %(params_hash)s, {{now}}, {{now}})
    ON CONFLICT DO NOTHING
    RETURNING id, job_type, next_run_at, created_at
)
SELECT id, next_run_at, created_at, pg_notify('{CHANNEL}', job_type) FROM inserted
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
# the chunk then goes through STAGE / INSERT_STAGED instead.
COPY_JOBS = """
COPY jobs (id, job_type, entity_id, payload, state, attempt, budget_start, max_retries,
           timeout_seconds, next_run_at, correlation_id, idempotency_key, params_hash,
           created_at, updated_at) FROM STDIN
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


def with_clock(statement: str, database_clock: bool) -> str:
    return statement.replace("{now}", "now()" if database_clock else "%(now)s::timestamptz")
