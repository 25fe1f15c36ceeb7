"""Bulk enqueue and retention: the hot tables stay small without losing what idempotency keys,
replay links and the ledger still need."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, delete, exists, select
from sqlalchemy.orm import aliased

from syncbridge.db.notify import notify_enqueued
from syncbridge.db.operator import OperatorStore
from syncbridge.db.schema import attempts, jobs, ledger, workers
from syncbridge.models import EnqueueRequest, EnqueueResult, Job
from syncbridge.states import TERMINAL_STATES

CHUNK = 1000

# PostgreSQL bulk enqueue (``BulkStore._copy_in``): a staging table per session, emptied at
# every commit.
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
RETURNING id, job_type, entity_id, next_run_at, created_at, updated_at
"""


class Inserted(NamedTuple):
    """What the database chose for a row ``_copy_in`` inserted."""

    id: int
    job_type: str
    entity_id: str
    next_run_at: datetime
    created_at: datetime
    updated_at: datetime


class BulkStore(OperatorStore):
    def enqueue_many(self, requests: Sequence[EnqueueRequest]) -> list[EnqueueResult]:
        """One multi-row ``INSERT .. ON CONFLICT DO NOTHING`` per chunk; rows that met an active
        job or a used key go through the single-job path (dedupe, follow-up, key checks)."""
        results: list[EnqueueResult | None] = [None] * len(requests)
        for start in range(0, len(requests), CHUNK):
            chunk = list(enumerate(requests[start : start + CHUNK], start))
            keyless = [(i, r) for i, r in chunk if r.idempotency_key is None]
            inserted = self._insert_many([r for _, r in keyless])
            for index, request in keyless:
                job = inserted.pop((request.job_type, request.entity_id), None)
                if job is not None:
                    results[index] = EnqueueResult(job=job, deduplicated=False)
            for index, request in chunk:
                if results[index] is None:
                    results[index] = self.enqueue(request)
        return [result for result in results if result is not None]

    def _insert_many(self, requests: list[EnqueueRequest]) -> dict[tuple[str, str], Job]:
        """The chunk's new jobs through the one prepared insert: SQLAlchemy sends the rows as
        multi-row ``INSERT .. ON CONFLICT DO NOTHING RETURNING *`` batches ("insertmanyvalues"),
        compiled once. A row that met a conflict simply does not come back."""
        if not requests:
            return {}
        rows = [self.fresh_row(request) for request in requests]
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                fresh: Sequence[Any] = self._copy_in(conn, rows)
                for job_type in {row.job_type for row in fresh}:
                    notify_enqueued(conn, job_type)
            else:
                fresh = conn.execute(self._insert_returning, rows).all()
        sent: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:  # the first request of an entity is the one the insert kept
            sent.setdefault((row["job_type"], row["entity_id"]), row)
        return {
            (row.job_type, row.entity_id): self.new_job(sent[(row.job_type, row.entity_id)], row)
            for row in fresh
        }

    def _copy_in(self, conn: Connection, rows: list[dict[str, Any]]) -> list[Inserted]:
        """PostgreSQL: ``COPY`` the chunk into a session-local staging table, then one
        ``INSERT .. SELECT .. ON CONFLICT DO NOTHING`` in request order (the first request of
        an entity wins, as in the single path). psycopg escapes every value for ``COPY``."""
        driver = conn.connection.driver_connection
        assert driver is not None
        clock = "now()" if self.uses_database_clock else "%(now)s"
        with driver.cursor() as cursor:
            cursor.execute(STAGING_TABLE)
            with cursor.copy(COPY_STAGING) as copy:
                for order, row in enumerate(rows):
                    copy.write_row(
                        (
                            order,
                            row["job_type"],
                            row["entity_id"],
                            json.dumps(row["payload"]),
                            row["max_retries"],
                            row["timeout_seconds"],
                            row["run_at"],
                            row["correlation_id"],
                            row["idempotency_key"],
                            row["params_hash"],
                        )
                    )
            params = {} if self.uses_database_clock else {"now": self.clock.now()}
            cursor.execute(INSERT_STAGED.replace("{now}", clock), params)
            return [
                Inserted(id_, job_type, entity_id, *(t.astimezone(UTC) for t in times))
                for id_, job_type, entity_id, *times in cursor.fetchall()
            ]

    def refresh_statistics(self) -> None:
        """``ANALYZE`` the jobs table, as autovacuum would within a minute or so. Right after a
        bulk load PostgreSQL would otherwise take the table for a small one and plan each claim
        as "every pending job, then sort" instead of reading ``ix_jobs_runnable`` in order."""
        with self.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE jobs" if self.dialect == "postgresql" else "ANALYZE")

    def prune(self, finished_before: datetime, dry_run: bool = False) -> int:
        """Delete terminal jobs finished before the cutoff, with their attempts, except those
        that an idempotency key, a ledger row or a replay link still needs."""
        replayer = aliased(jobs)
        doomed = select(jobs.c.id).where(
            jobs.c.state.in_([str(s) for s in TERMINAL_STATES]),
            jobs.c.finished_at < finished_before,
            jobs.c.idempotency_key.is_(None),
            ~exists().where(ledger.c.job_id == jobs.c.id),
            ~exists().where(replayer.c.replay_of_job_id == jobs.c.id),
        )
        with self.engine.begin() as conn:
            ids = list(conn.execute(doomed).scalars())
            if dry_run or not ids:
                return len(ids)
            for start in range(0, len(ids), CHUNK):
                batch = ids[start : start + CHUNK]
                conn.execute(delete(attempts).where(attempts.c.job_id.in_(batch)))
                conn.execute(delete(jobs).where(jobs.c.id.in_(batch)))
            conn.execute(
                delete(workers).where(
                    and_(workers.c.stopped_at.is_not(None), workers.c.stopped_at < finished_before)
                )
            )
        return len(ids)
