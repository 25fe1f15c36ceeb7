"""The job lifecycle in SQL: claim, renew, complete, rescue, release (enqueue: ``enqueue.py``).

Every write about a running job is fenced: ``id``, ``attempt``, ``state = 'running'`` and
``lease_owner`` must all still match, or the write changes nothing and the caller is told.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, insert, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite

from syncbridge.db.enqueue import EnqueueStore
from syncbridge.db.schema import attempts, jobs, ledger, workers
from syncbridge.models import (
    Completion,
    CompletionResult,
    ErrorSnapshot,
    Job,
    RenewResult,
    RescuedJob,
)
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome, JobState
from syncbridge.transitions import Transition, decide

DEFAULT_POLICY = RetryPolicy()


class LifecycleStore(EnqueueStore):
    # -- claim ---------------------------------------------------------------------------------

    def claim(
        self,
        worker_id: str,
        job_types: Sequence[str],
        limit: int,
        lease_seconds: float,
        isolated: bool = False,
    ) -> list[Job]:
        """Take up to ``limit`` due jobs: running, attempt + 1, leased, attempt rows written.

        ``isolated`` picks only jobs that lost a lease before (they run alone); otherwise only
        jobs that did not.
        """
        if limit <= 0 or not job_types:
            return []
        due = (
            select(jobs.c.id)
            .where(
                jobs.c.state == JobState.PENDING,
                jobs.c.next_run_at <= self.now_sql(),
                jobs.c.job_type.in_(list(job_types)),
                jobs.c.isolate == isolated,
            )
            .order_by(jobs.c.next_run_at, jobs.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            # Materialized: an inlined subquery can be re-run by the planner and lock (and so
            # claim) more rows than the limit.
            .cte("due")
            .prefix_with("MATERIALIZED", dialect="postgresql")
        )
        with self.engine.begin() as conn:
            rows = conn.execute(
                update(jobs)
                .where(jobs.c.id == due.c.id, jobs.c.state == JobState.PENDING)
                .values(
                    state=JobState.RUNNING,
                    attempt=jobs.c.attempt + 1,
                    lease_owner=worker_id,
                    lease_expires_at=self.now_sql(lease_seconds),
                    updated_at=self.now_sql(),
                )
                .returning(*jobs.c)
            ).all()
            claimed = sorted((Job.from_row(row) for row in rows), key=lambda j: j.next_run_at)
            if claimed:
                conn.execute(
                    insert(attempts),
                    [
                        {
                            "job_id": job.id,
                            "number": job.attempt,
                            "worker_id": worker_id,
                            "started_at": job.updated_at,
                            "outcome": AttemptOutcome.RUNNING,
                        }
                        for job in claimed
                    ],
                )
        return claimed

    # -- renew ---------------------------------------------------------------------------------

    def renew(
        self, worker_id: str, held: Iterable[tuple[int, int]], lease_seconds: float
    ) -> RenewResult:
        """Extend the leases of ``held`` (job id, attempt) in one statement; report the lost."""
        held = list(held)
        with self.engine.begin() as conn:
            conn.execute(
                update(workers)
                .where(workers.c.id == worker_id)
                .values(last_heartbeat=self.now_sql())
            )
            if not held:
                return RenewResult(frozenset(), frozenset(), frozenset())
            rows = conn.execute(
                update(jobs)
                .where(
                    tuple_(jobs.c.id, jobs.c.attempt).in_(held),
                    jobs.c.state == JobState.RUNNING,
                    jobs.c.lease_owner == worker_id,
                )
                .values(lease_expires_at=self.now_sql(lease_seconds))
                .returning(jobs.c.id, jobs.c.cancel_requested)
            ).all()
        renewed = frozenset(row.id for row in rows)
        return RenewResult(
            renewed=renewed,
            lost=frozenset(job_id for job_id, _ in held) - renewed,
            cancel_requested=frozenset(row.id for row in rows if row.cancel_requested),
        )

    # -- complete ------------------------------------------------------------------------------

    def complete(
        self, completions: Sequence[Completion], policy: RetryPolicy = DEFAULT_POLICY
    ) -> list[CompletionResult]:
        """Record finished attempts in one transaction. A completion whose fence no longer
        matches (lease lost) writes nothing and comes back with ``applied=False``."""
        results: list[CompletionResult] = []
        if not completions:
            return results
        with self.engine.begin() as conn:
            for completion in completions:
                results.append(self._complete_one(conn, completion, policy))
        return results

    def _fenced(self, conn: Connection, job_id: int, attempt: int, owner: str) -> Job | None:
        query = select(jobs).where(
            jobs.c.id == job_id,
            jobs.c.attempt == attempt,
            jobs.c.state == JobState.RUNNING,
            jobs.c.lease_owner == owner,
        )
        if self.dialect == "postgresql":
            query = query.with_for_update()
        row = conn.execute(query).one_or_none()
        return Job.from_row(row) if row else None

    def _complete_one(
        self, conn: Connection, completion: Completion, policy: RetryPolicy
    ) -> CompletionResult:
        job = self._fenced(conn, completion.job_id, completion.attempt, completion.worker_id)
        if job is None:
            return CompletionResult(completion.job_id, completion.attempt, applied=False)
        error = completion.error
        transition = decide(job, completion.outcome, policy, error.retry_after if error else None)
        attempt_id = self._close_attempt(conn, job, completion.outcome, completion)
        last_error = None
        if error is not None:
            last_error = error.to_dict() | {"attempt_id": attempt_id, "attempt": job.attempt}
        follow_up_id = self._apply(conn, job, transition, last_error, owner=completion.worker_id)
        if completion.effect is not None and transition.state is JobState.SUCCEEDED:
            conn.execute(
                self._ledger_insert().values(
                    effect_key=completion.effect.effect_key,
                    job_id=job.id,
                    lineage_id=job.effective_lineage_id,
                    upstream=completion.effect.upstream,
                    upstream_ref=completion.effect.upstream_ref,
                    applied_at=self.now_sql(),
                )
            )
        return CompletionResult(
            job.id, job.attempt, True, state=transition.state, follow_up_job_id=follow_up_id
        )

    def _ledger_insert(self) -> postgresql.Insert | sqlite.Insert:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        # A replay or reconcile meeting an existing row links to it; never abort the completion.
        return dialect_insert(ledger).on_conflict_do_nothing()

    def _close_attempt(
        self,
        conn: Connection,
        job: Job,
        outcome: AttemptOutcome,
        completion: Completion | None = None,
    ) -> int:
        error = completion.error if completion else None
        return int(
            conn.execute(
                update(attempts)
                .where(attempts.c.job_id == job.id, attempts.c.number == job.attempt)
                .values(
                    finished_at=self.now_sql(),
                    outcome=outcome,
                    error_class=error.error_class if error else None,
                    error_message=error.message if error else None,
                    retryable=error.retryable if error else None,
                    http_status=error.http_status if error else None,
                )
                .returning(attempts.c.id)
            ).scalar_one()
        )

    def _apply(
        self,
        conn: Connection,
        job: Job,
        transition: Transition,
        last_error: dict[str, Any] | None,
        owner: str | None,
    ) -> int | None:
        """Write ``transition`` for ``job`` (still fenced) and enqueue its follow-up if due."""
        values: dict[str, Any] = {
            "state": transition.state,
            "lease_owner": None,
            "lease_expires_at": None,
            "isolate": transition.isolate,
            "updated_at": self.now_sql(),
        }
        if last_error is not None:
            values["last_error"] = last_error
        if transition.state is JobState.PENDING:
            values["next_run_at"] = self.now_sql(transition.delay_seconds)
            if not transition.charge:
                values["budget_start"] = jobs.c.budget_start + 1
        else:
            values["finished_at"] = self.now_sql()
        if transition.enqueue_follow_up:
            values["follow_up"] = False
        fence = and_(
            jobs.c.id == job.id, jobs.c.attempt == job.attempt, jobs.c.state == JobState.RUNNING
        )
        if owner is not None:
            fence = and_(fence, jobs.c.lease_owner == owner)
        written = conn.execute(update(jobs).where(fence).values(**values)).rowcount
        if written != 1:
            raise RuntimeError(f"fenced write of job {job.id} changed {written} rows")
        if not transition.enqueue_follow_up:
            return None
        return self._enqueue_follow_up(conn, job)

    # -- rescue and release --------------------------------------------------------------------

    def rescue(self, policy: RetryPolicy = DEFAULT_POLICY, limit: int = 500) -> list[RescuedJob]:
        """Return jobs whose lease expired to pending (backoff, isolated) or to dead."""
        query = (
            select(jobs)
            .where(jobs.c.state == JobState.RUNNING, jobs.c.lease_expires_at < self.now_sql())
            .order_by(jobs.c.lease_expires_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        rescued: list[RescuedJob] = []
        with self.engine.begin() as conn:
            for row in conn.execute(query).all():
                job = Job.from_row(row)
                transition = decide(job, AttemptOutcome.LEASE_EXPIRED, policy)
                lost = ErrorSnapshot(
                    error_class="LeaseExpired",
                    message=f"lease held by {job.lease_owner} expired during attempt {job.attempt}",
                    retryable=True,
                )
                closing = Completion(
                    job.id, job.attempt, job.lease_owner or "", AttemptOutcome.LEASE_EXPIRED, lost
                )
                attempt_id = self._close_attempt(conn, job, AttemptOutcome.LEASE_EXPIRED, closing)
                last_error = lost.to_dict() | {"attempt_id": attempt_id, "attempt": job.attempt}
                self._apply(conn, job, transition, last_error, owner=job.lease_owner)
                rescued.append(RescuedJob(job.id, job.attempt, job.lease_owner, transition.state))
        return rescued

    def release(self, worker_id: str, held: Iterable[tuple[int, int]]) -> list[CompletionResult]:
        """Give back jobs a stopping worker did not finish, without charging an attempt."""
        return self.complete(
            [
                Completion(job_id, attempt, worker_id, AttemptOutcome.RELEASED)
                for job_id, attempt in held
            ]
        )

    # -- workers -------------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int, job_types: list[str]) -> None:
        now = self.now_sql()
        with self.engine.begin() as conn:
            conn.execute(workers.delete().where(workers.c.id == worker_id))
            conn.execute(
                insert(workers).values(
                    id=worker_id,
                    host=host,
                    pid=pid,
                    job_types=job_types,
                    started_at=now,
                    last_heartbeat=now,
                )
            )

    def stop_worker(self, worker_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(workers).where(workers.c.id == worker_id).values(stopped_at=self.now_sql())
            )
