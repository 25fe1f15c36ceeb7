"""The price of correctness: a hand-written batched ``SKIP LOCKED`` loop on syncbridge's own
schema, adding one guarantee at a time, to set against ``syncbridge bench noop``.

    .venv/bin/python scripts/peers/bare_loop.py --database-url postgresql+psycopg://... \
        --jobs 20000 --batch 100 --processes 1

Levels (each in a fresh database, jobs filled in SQL, no handler work):

- ``bare``: claim a batch (one ``UPDATE .. WHERE id IN (SELECT .. FOR UPDATE SKIP LOCKED)``),
  mark the batch succeeded (one ``UPDATE .. WHERE id = ANY``): the floor.
- ``+attempts``: also write an attempt row per claim and close it on completion (one
  statement each per batch).
- ``+fencing``: completion only where ``id, attempt, state = 'running', lease_owner`` all still
  match, set-based, checking how many rows it changed.
- ``per-job``: the same fenced completion written per job: ``SELECT .. FOR UPDATE`` then update
  the attempt then the job (one transaction a batch), the engine's shape before issue #8.
- ``engine SQL``: the statements the engine sends today, with nothing around them: one
  autocommitted claim that also writes the attempt rows, one autocommitted fenced completion that
  also closes them (``driver_sql.CLAIM`` and ``driver_sql.SUCCEED_MANY``).
- ``engine SQL, attempt at end``: a what-if for later work, not what the engine does: the same
  claim without the attempt rows, and a completion that inserts each finished attempt row whole
  (started at the claim's time) instead of updating the one the claim opened.

Prints one JSON line per level: ``{"level", "jobs", "processes", "batch", "seconds",
"jobs_per_s"}``. PostgreSQL only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time

import psycopg

from syncbridge.bench.measure import analyze, fill_backlog
from syncbridge.bench.sandbox import sandbox

CLAIM = """
UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = %(owner)s,
       lease_expires_at = now() + interval '60 seconds', updated_at = now()
WHERE id IN (SELECT id FROM jobs WHERE state = 'pending' AND next_run_at <= now()
             ORDER BY next_run_at, id LIMIT %(batch)s FOR UPDATE SKIP LOCKED)
RETURNING id, attempt
"""
ADD_ATTEMPTS = """
INSERT INTO attempts (job_id, number, worker_id, started_at, outcome)
SELECT unnest(%(ids)s::bigint[]), unnest(%(numbers)s::int[]), %(owner)s, now(), 'running'
"""
CLOSE_ATTEMPTS = """
UPDATE attempts SET finished_at = now(), outcome = 'succeeded'
FROM unnest(%(ids)s::bigint[], %(numbers)s::int[]) AS done(id, number)
WHERE attempts.job_id = done.id AND attempts.number = done.number
"""
FINISH_BARE = """
UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
       finished_at = now(), updated_at = now()
WHERE id = ANY(%(ids)s::bigint[])
"""
FINISH_FENCED = """
UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
       finished_at = now(), updated_at = now()
FROM unnest(%(ids)s::bigint[], %(numbers)s::int[]) AS done(id, number)
WHERE jobs.id = done.id AND jobs.attempt = done.number AND jobs.state = 'running'
  AND jobs.lease_owner = %(owner)s
"""
FENCE_ONE = """SELECT * FROM jobs WHERE id = %s AND attempt = %s AND state = 'running'
AND lease_owner = %s FOR UPDATE"""
CLOSE_ONE = """UPDATE attempts SET finished_at = now(), outcome = 'succeeded'
WHERE job_id = %s AND number = %s RETURNING id"""
FINISH_ONE = """UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
finished_at = now(), updated_at = now()
WHERE id = %s AND attempt = %s AND state = 'running' AND lease_owner = %s"""

CLAIM_WITH_ATTEMPTS = """
WITH due AS MATERIALIZED (
    SELECT id FROM jobs WHERE state = 'pending' AND next_run_at <= now() AND NOT isolate
    ORDER BY next_run_at, id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = %(owner)s,
           lease_expires_at = now() + interval '60 seconds', updated_at = now()
    FROM due WHERE jobs.id = due.id AND jobs.state = 'pending'
    RETURNING jobs.id, jobs.attempt, jobs.updated_at
), opened AS (
    INSERT INTO attempts (job_id, number, worker_id, started_at, outcome)
    SELECT id, attempt, %(owner)s, updated_at, 'running' FROM claimed
)
SELECT id, attempt FROM claimed
"""
# The fenced success of the engine's SQL, as a CTE ``done``; each level closes the attempts its
# own way after it.
FENCED_DONE = """
WITH done AS (
    UPDATE jobs SET state = 'succeeded', lease_owner = NULL, lease_expires_at = NULL,
           finished_at = now(), updated_at = now()
    FROM unnest(%(ids)s::bigint[], %(numbers)s::int[]) AS f(id, number)
    WHERE jobs.id = f.id AND jobs.attempt = f.number AND jobs.state = 'running'
      AND jobs.lease_owner = %(owner)s AND NOT jobs.follow_up
    RETURNING jobs.id, jobs.attempt
)"""
SUCCEED_FENCED_WITH_ATTEMPTS = (
    FENCED_DONE
    + """, closed AS (
    UPDATE attempts SET finished_at = now(), outcome = 'succeeded'
    FROM done WHERE attempts.job_id = done.id AND attempts.number = done.attempt
)
SELECT count(*) FROM done
"""
)

CLAIM_ONLY = """
WITH due AS MATERIALIZED (
    SELECT id FROM jobs WHERE state = 'pending' AND next_run_at <= now() AND NOT isolate
    ORDER BY next_run_at, id LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = %(owner)s,
       lease_expires_at = now() + interval '60 seconds', updated_at = now()
FROM due WHERE jobs.id = due.id AND jobs.state = 'pending'
RETURNING jobs.id, jobs.attempt, jobs.updated_at
"""
SUCCEED_FENCED_INSERTING_ATTEMPTS = (
    FENCED_DONE
    + """, closed AS (
    INSERT INTO attempts (job_id, number, worker_id, started_at, finished_at, outcome)
    SELECT done.id, done.attempt, %(owner)s, s.started_at, now(), 'succeeded'
    FROM done JOIN unnest(%(ids)s::bigint[], %(started)s::timestamptz[]) AS s(id, started_at)
         ON s.id = done.id
)
SELECT count(*) FROM done
"""
)

LEVELS = ("bare", "+attempts", "+fencing", "per-job", "engine SQL", "engine SQL, attempt at end")
# Without --level: every level but the what-if, which measures a design the engine does not use.
DEFAULT_LEVELS = LEVELS[:-1]


def work_in_two_statements(dsn: str, batch: int, owner: str, claim: str, succeed: str) -> None:
    """Autocommitted claim, then autocommitted fenced success, until nothing is due. The
    claim's third column, if any, is the attempt's start, passed on as ``started``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            rows = conn.execute(claim, {"owner": owner, "batch": batch}).fetchall()
            if not rows:
                return
            args = {"ids": [r[0] for r in rows], "numbers": [r[1] for r in rows], "owner": owner}
            args["started"] = [r[2] if len(r) > 2 else None for r in rows]
            changed = conn.execute(succeed, args).fetchone()
            assert changed is not None and changed[0] == len(rows), "a fenced completion failed"


def work(dsn: str, level: str, batch: int, owner: str) -> None:
    if level == "engine SQL":
        work_in_two_statements(dsn, batch, owner, CLAIM_WITH_ATTEMPTS, SUCCEED_FENCED_WITH_ATTEMPTS)
        return
    if level == "engine SQL, attempt at end":
        work_in_two_statements(dsn, batch, owner, CLAIM_ONLY, SUCCEED_FENCED_INSERTING_ATTEMPTS)
        return
    with psycopg.connect(dsn) as conn:
        while True:
            with conn.transaction():
                rows = conn.execute(CLAIM, {"owner": owner, "batch": batch}).fetchall()
                args = {"ids": [r[0] for r in rows], "numbers": [r[1] for r in rows]}
                if rows and level != "bare":
                    conn.execute(ADD_ATTEMPTS, args | {"owner": owner})
            if not rows:
                return
            with conn.transaction():
                if level == "bare":
                    conn.execute(FINISH_BARE, args)
                elif level == "per-job":
                    for job_id, attempt in rows:
                        conn.execute(FENCE_ONE, (job_id, attempt, owner)).fetchone()
                        conn.execute(CLOSE_ONE, (job_id, attempt)).fetchone()
                        conn.execute(FINISH_ONE, (job_id, attempt, owner))
                else:
                    conn.execute(CLOSE_ATTEMPTS, args)
                    finish = FINISH_FENCED if level == "+fencing" else FINISH_BARE
                    changed = conn.execute(finish, args | {"owner": owner}).rowcount
                    assert changed == len(rows), "a fenced completion lost its job"


def run_level(url: str, level: str, jobs: int, batch: int, processes: int) -> dict[str, object]:
    with sandbox(url, "bare") as box:
        fill_backlog(box.engine, jobs, "b")
        analyze(box.engine)
        dsn = box.url.replace("postgresql+psycopg://", "postgresql://", 1)
        begin = time.perf_counter()
        workers = [
            multiprocessing.Process(target=work, args=(dsn, level, batch, f"bare-{n}"))
            for n in range(processes)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - begin
        failed = [worker.exitcode for worker in workers if worker.exitcode != 0]
        assert not failed, f"{level}: worker processes exited with {failed}"
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM jobs WHERE state = 'succeeded'").fetchone()
        assert row is not None and row[0] == jobs, f"{level}: {row} of {jobs} succeeded"
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT count(*) FROM attempts").fetchone()
        assert level == "bare" or (row is not None and row[0] == jobs), row
    return {
        "level": level,
        "jobs": jobs,
        "processes": processes,
        "batch": batch,
        "seconds": round(seconds, 4),
        "jobs_per_s": round(jobs / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--level", choices=LEVELS, action="append")
    args = parser.parse_args()
    for level in args.level or DEFAULT_LEVELS:
        report = run_level(args.database_url, level, args.jobs, args.batch, args.processes)
        print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
