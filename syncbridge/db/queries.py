"""Read-only queries: what the CLI, the API and the checks show."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select, text

from syncbridge.db.bulk import BulkStore
from syncbridge.db.schema import ACTIVE, FINISHED, attempts, jobs, ledger, workers
from syncbridge.errors import UnknownJob
from syncbridge.models import Attempt, Job
from syncbridge.states import JobState


class Store(BulkStore):
    """The one store interface: lifecycle, operator actions, bulk work and reads."""

    def get_job(self, job_id: int) -> Job:
        with self.reading() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).one_or_none()
        if row is None:
            raise UnknownJob(f"no job with id {job_id}")
        return Job.from_row(row)

    def list_jobs(
        self,
        *,
        state: str | None = None,
        job_type: str | None = None,
        entity_id: str | None = None,
        limit: int = 50,
        before_id: int | None = None,
    ) -> list[Job]:
        """Newest first; ``before_id`` is the cursor of the next page."""
        query = select(jobs).order_by(jobs.c.id.desc()).limit(limit)
        if state:
            query = query.where(jobs.c.state == state)
        if job_type:
            query = query.where(jobs.c.job_type == job_type)
        if entity_id is not None:
            query = query.where(self._of_entity(entity_id))
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)
        with self.reading() as conn:
            return [Job.from_row(row) for row in conn.execute(query).all()]

    def _of_entity(self, entity_id: str) -> ColumnElement[bool]:
        """``entity_id = :entity_id``, written for the indexes: on PostgreSQL ix_jobs_entity
        holds only finished jobs and uq_jobs_active_entity the active ones (migration 0005),
        so each state group is an arm of its own, with the index's predicate as literal text
        (a partial index is chosen only for a predicate the planner can prove)."""
        same = jobs.c.entity_id == entity_id
        if self.dialect != "postgresql":
            return same
        return or_(and_(same, text(ACTIVE)), and_(same, text(FINISHED)))

    def attempts_of(self, job_id: int) -> list[Attempt]:
        query = select(attempts).where(attempts.c.job_id == job_id).order_by(attempts.c.number)
        with self.reading() as conn:
            return [Attempt.from_row(row) for row in conn.execute(query).all()]

    def lineage_of(self, job: Job) -> dict[str, list[int]]:
        """The jobs this one replays (oldest first) and the jobs that replay it."""
        ancestors: list[int] = []
        with self.reading() as conn:
            parent = job.replay_of_job_id
            while parent is not None and parent not in ancestors:
                ancestors.insert(0, parent)
                parent = conn.execute(
                    select(jobs.c.replay_of_job_id).where(jobs.c.id == parent)
                ).scalar_one_or_none()
            replayed_by = list(
                conn.execute(
                    select(jobs.c.id).where(jobs.c.replay_of_job_id == job.id).order_by(jobs.c.id)
                ).scalars()
            )
        return {"replays": ancestors, "replayed_by": replayed_by}

    def dlq(
        self, job_type: str | None = None, limit: int = 200, before_id: int | None = None
    ) -> list[Job]:
        """Dead jobs, newest first; ``before_id`` is the cursor of the next page."""
        query = select(jobs).where(jobs.c.state == JobState.DEAD).order_by(jobs.c.id.desc())
        if job_type:
            query = query.where(jobs.c.job_type == job_type)
        if before_id is not None:
            query = query.where(jobs.c.id < before_id)
        with self.reading() as conn:
            return [Job.from_row(row) for row in conn.execute(query.limit(limit)).all()]

    def counts_by_state(self) -> dict[str, int]:
        query = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        with self.reading() as conn:
            counts = {str(state): 0 for state in JobState}
            counts.update({row[0]: int(row[1]) for row in conn.execute(query).all()})
        return counts

    def attempts_started(self, edges: list[datetime]) -> list[Counter[str]]:
        """Attempts by outcome (``running`` for those not ended yet), for each interval
        ``[edges[i], edges[i + 1])`` (the last one includes its end): ``len(edges) - 1``
        counters.

        By start, not by end: ``started_at`` is written once, at claim, so its index
        (migration 0007) leaves the attempt's one update HOT, and every attempt falls in
        exactly one interval however long it ran. Reads only the attempts of the
        window, however many older ones the table holds."""
        first, last = edges[0], edges[-1]
        started = attempts.c.started_at
        inner_edges = edges[1:-1]
        interval = case(
            *[(started < edge, n) for n, edge in enumerate(inner_edges)], else_=len(inner_edges)
        )
        inner = (
            select(interval.label("interval"), attempts.c.outcome.label("outcome"))
            .where(started >= first, started <= last)
            .subquery()
        )
        query = select(inner.c.interval, inner.c.outcome, func.count()).group_by(
            inner.c.interval, inner.c.outcome
        )
        counts: list[Counter[str]] = [Counter() for _ in edges[1:]]
        with self.reading() as conn:
            for interval_number, outcome, count in conn.execute(query).all():
                counts[int(interval_number)][str(outcome)] += int(count)
        return counts

    def ledger_rows(
        self, lineage_id: int | None = None, job_id: int | None = None
    ) -> list[dict[str, Any]]:
        """The ledger in the order it was written: a lineage's rows, or those a job filed."""
        query = select(ledger).order_by(ledger.c.id)
        if lineage_id is not None:
            query = query.where(ledger.c.lineage_id == lineage_id)
        if job_id is not None:
            query = query.where(ledger.c.job_id == job_id)
        with self.reading() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]

    def live_workers(self) -> list[dict[str, Any]]:
        query = select(workers).where(workers.c.stopped_at.is_(None)).order_by(workers.c.id)
        with self.reading() as conn:
            return [dict(row._mapping) for row in conn.execute(query).all()]

    def has_runnable(self, job_types: list[str]) -> bool:
        """Is any job of these types due now (or running with an expired lease)?"""
        now = self.now_sql()
        query = select(jobs.c.id).where(
            jobs.c.job_type.in_(job_types),
            or_(
                (jobs.c.state == JobState.PENDING) & (jobs.c.next_run_at <= now),
                (jobs.c.state == JobState.RUNNING) & (jobs.c.lease_expires_at < now),
            ),
        )
        with self.reading() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def isolated_pending(self, job_types: list[str]) -> bool:
        """Is any job that must run alone waiting, due or not (workers probe only then)?"""
        query = select(jobs.c.id).where(
            jobs.c.state == JobState.PENDING,
            jobs.c.isolate.is_(True),
            jobs.c.job_type.in_(job_types),
        )
        with self.reading() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def isolated_due(self, job_types: list[str]) -> bool:
        """Is a job that must run alone (it lost a lease before) due now?"""
        query = select(jobs.c.id).where(
            jobs.c.state == JobState.PENDING,
            jobs.c.isolate.is_(True),
            jobs.c.next_run_at <= self.now_sql(),
            jobs.c.job_type.in_(job_types),
        )
        with self.reading() as conn:
            return conn.execute(query.limit(1)).first() is not None
