"""Operator actions on jobs: cancel, retry, replay. Guarded in SQL: an illegal move changes
nothing and raises :class:`IllegalTransition` naming why."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, delete, desc, select, update

from syncbridge.db.enqueue import ACTIVE
from syncbridge.db.lifecycle import LifecycleStore
from syncbridge.db.schema import attempts, jobs, reconcile_asks
from syncbridge.errors import IllegalTransition, UnknownJob
from syncbridge.models import EnqueueRequest, Job, derived_correlation_id
from syncbridge.states import JobState

REPLAYABLE = (JobState.DEAD, JobState.FAILED)


@dataclass(frozen=True)
class ReplayPlan:
    job: Job
    refused: str | None  # why this job cannot be replayed now, or None


class OperatorStore(LifecycleStore):
    def _locked(self, conn: Connection, job_id: int) -> Job:
        query = select(jobs).where(jobs.c.id == job_id)
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one_or_none()
        if row is None:
            raise UnknownJob(f"no job with id {job_id}")
        return Job.from_row(row)

    def cancel(self, job_id: int) -> Job:
        """Pending: cancelled at once. Running: its handler is asked to stop; it becomes
        cancelled when the attempt ends or the lease expires."""
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            if job.state is JobState.PENDING:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state == JobState.PENDING)
                    .values(
                        state=JobState.CANCELLED,
                        follow_up=False,
                        updated_at=self.now_sql(),
                        finished_at=self.now_sql(),
                    )
                )
                if job.follow_up:  # a change enqueued during an earlier run is its own request
                    self._enqueue_follow_up(conn, job)
            elif job.state is JobState.RUNNING:
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id, jobs.c.state == JobState.RUNNING)
                    .values(cancel_requested=True, updated_at=self.now_sql())
                )
            else:
                raise IllegalTransition(
                    f"job {job_id} is {job.state}; only pending or running jobs can be cancelled"
                )
            return self._get(conn, job_id)

    def retry(self, job_id: int) -> Job:
        """A failed job back to pending with a fresh retry budget; its attempts stay."""
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            if job.state is not JobState.FAILED:
                hint = "; replay it instead" if job.state is JobState.DEAD else ""
                raise IllegalTransition(
                    f"job {job_id} is {job.state}; only failed jobs can be retried{hint}"
                )
            self._refuse_if_active(conn, job)
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.FAILED)
                .values(
                    state=JobState.PENDING,
                    budget_start=jobs.c.attempt,
                    next_run_at=self.now_sql(),
                    cancel_requested=False,
                    isolate=False,
                    finished_at=None,
                    updated_at=self.now_sql(),
                )
            )
            # Running again, the job is no longer reconcile's to ask about (INV_017); if it ends
            # unsuccessful again, it is asked about afresh.
            conn.execute(delete(reconcile_asks).where(reconcile_asks.c.job_id == job_id))
            return self._get(conn, job_id)

    def _refuse_if_active(self, conn: Connection, job: Job) -> None:
        active = self._active_job(conn, job.job_type, job.entity_id)
        if active is not None and active.id != job.id:
            raise IllegalTransition(
                f"entity {job.entity_id!r} already has an active {job.job_type} job "
                f"{active.id} ({active.state})"
            )

    def plan_replay(self, job_id: int) -> ReplayPlan:
        with self.reading() as conn:
            job = self._locked(conn, job_id)
            return ReplayPlan(job, self._replay_refusal(conn, job))

    def _replay_refusal(self, conn: Connection, job: Job) -> str | None:
        if job.state not in REPLAYABLE:
            return f"job {job.id} is {job.state}; only dead or failed jobs can be replayed"
        try:
            self._refuse_if_active(conn, job)
        except IllegalTransition as exc:
            return str(exc)
        return None

    def replay(self, job_id: int) -> Job:
        """A new pending job linked to ``job_id`` (same type, entity, payload and lineage, so the
        same effect keys). The replayed job is never changed."""
        with self.engine.begin() as conn:
            job = self._locked(conn, job_id)
            refusal = self._replay_refusal(conn, job)
            if refusal:
                raise IllegalTransition(refusal)
            last_attempt = conn.execute(
                select(attempts.c.id)
                .where(attempts.c.job_id == job.id)
                .order_by(desc(attempts.c.number))
                .limit(1)
            ).scalar_one_or_none()
            request = EnqueueRequest(
                job_type=job.job_type,
                entity_id=job.entity_id,
                payload=job.payload,
                max_retries=job.max_retries,
                correlation_id=derived_correlation_id(
                    job.correlation_id, f"replay-{uuid.uuid4().hex[:8]}"
                ),
                timeout_seconds=job.timeout_seconds,
            )
            new_id = self._insert_job(
                conn,
                request,
                job.params_hash,
                extra={
                    "lineage_id": job.effective_lineage_id,
                    "replay_of_job_id": job.id,
                    "replay_of_attempt_id": last_attempt,
                },
            )
            if new_id is None:  # an enqueue won the entity between our check and insert
                active = self._active_job(conn, job.job_type, job.entity_id)
                raise IllegalTransition(
                    f"entity {job.entity_id!r} already has an active {job.job_type} job "
                    f"{active.id if active else '?'}"
                )
            return self._get(conn, new_id)

    def replay_candidates(
        self, job_type: str | None, error_class: str | None, limit: int | None
    ) -> list[Job]:
        """Dead jobs matching the filters that no other job replays yet, oldest first."""
        replayed = select(jobs.c.replay_of_job_id).where(jobs.c.replay_of_job_id.is_not(None))
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.DEAD, jobs.c.id.not_in(replayed))
            .order_by(jobs.c.id)
        )
        if job_type:
            query = query.where(jobs.c.job_type == job_type)
        if error_class:
            query = query.where(jobs.c.last_error["class"].as_string() == error_class)
        if limit:
            query = query.limit(limit)
        with self.reading() as conn:
            return [Job.from_row(row) for row in conn.execute(query).all()]


__all__ = ["ACTIVE", "OperatorStore", "ReplayPlan"]
