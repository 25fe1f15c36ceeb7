"""Bulk enqueue and retention: the hot tables stay small without losing what idempotency keys,
replay links and the ledger still need."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, select, update
from sqlalchemy.orm import aliased

from syncbridge.db.base import params_hash
from syncbridge.db.notify import notify_enqueued
from syncbridge.db.operator import OperatorStore
from syncbridge.db.schema import attempts, jobs, ledger, workers
from syncbridge.models import EnqueueRequest, EnqueueResult, Job
from syncbridge.states import TERMINAL_STATES, JobState

CHUNK = 1000


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
        if not requests:
            return {}
        now = self.clock.now()
        rows: list[dict[str, Any]] = [
            {
                "job_type": r.job_type,
                "entity_id": r.entity_id,
                "payload": r.payload,
                "state": JobState.PENDING,
                "attempt": 0,
                "budget_start": 0,
                "max_retries": r.max_retries,
                "timeout_seconds": r.timeout_seconds,
                "next_run_at": r.run_at or now,
                "correlation_id": r.correlation_id or uuid.uuid4().hex,
                "idempotency_key": None,
                "params_hash": params_hash(r.job_type, r.entity_id, r.payload),
                "created_at": now,
                "updated_at": now,
            }
            for r in requests
        ]
        scheduled = {(r.job_type, r.entity_id) for r in requests if r.run_at is not None}
        with self.engine.begin() as conn:
            new = conn.execute(
                self._insert()
                .values(rows)
                .on_conflict_do_nothing()
                .returning(jobs.c.id, jobs.c.job_type, jobs.c.entity_id)
            ).all()
            ids = [row.id for row in new]
            if not ids:
                return {}
            conn.execute(update(jobs).where(jobs.c.id.in_(ids)).values(lineage_id=jobs.c.id))
            if self.uses_database_clock:
                # Lease and schedule times are the database's on PostgreSQL: restamp the chunk.
                db_now = self.now_sql()
                due_now = [r.id for r in new if (r.job_type, r.entity_id) not in scheduled]
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id.in_(ids))
                    .values(created_at=db_now, updated_at=db_now)
                )
                if due_now:
                    conn.execute(
                        update(jobs).where(jobs.c.id.in_(due_now)).values(next_run_at=db_now)
                    )
            fresh = conn.execute(select(jobs).where(jobs.c.id.in_(ids))).all()
            if self.dialect == "postgresql":
                for job_type in {row.job_type for row in new}:
                    notify_enqueued(conn, job_type)
        return {(row.job_type, row.entity_id): Job.from_row(row) for row in fresh}

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
