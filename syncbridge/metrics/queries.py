"""The reads behind the metrics, by name: one statement each, both backends.

- :func:`queue_snapshot` runs on every scrape, so it reads only the states a queue is made of
  (``pending``, ``running``, ``failed``, ``dead``) through the ``(state, job_type)`` index: the
  ever-growing ``succeeded`` and ``cancelled`` rows are never counted there.
- :func:`worker_snapshot` reads the workers that have not stopped (a handful of rows).
- :func:`unanswered_effects` reads ``reconcile_asks`` (a row per job whose effect reconcile
  could not settle yet: few, and none in a healthy system).
- :func:`job_counts` and :func:`attempt_stats` back the JSON summary, which is asked for by a
  person or a dashboard, not scraped; they read every row.

Times are the store's "now": the database clock on PostgreSQL, the injected clock elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, or_, select

from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts, jobs, reconcile_asks, workers
from syncbridge.states import AttemptOutcome, JobState

QUEUE_STATES = (JobState.PENDING, JobState.RUNNING, JobState.FAILED, JobState.DEAD)
RETRYABLE_OUTCOMES = (AttemptOutcome.ERROR, AttemptOutcome.TIMEOUT, AttemptOutcome.LEASE_EXPIRED)
# Attempts that ran to an outcome of their own (a released or expired one has no real duration).
TIMED_OUTCOMES = (
    AttemptOutcome.SUCCEEDED,
    AttemptOutcome.ERROR,
    AttemptOutcome.FAILED,
    AttemptOutcome.TIMEOUT,
    AttemptOutcome.CANCELLED,
)


@dataclass(frozen=True)
class TypeCounts:
    """One (state, job type) group: how many jobs, how many due now, the oldest due."""

    state: str
    job_type: str
    jobs: int
    runnable: int
    oldest_runnable: datetime | None


@dataclass(frozen=True)
class WorkerSnapshot:
    now: datetime
    live: int  # not stopped, heartbeat within the stale limit
    stale: int  # not stopped, but silent past the limit (killed without a chance to stop)
    last_heartbeat: datetime | None  # the newest heartbeat of any worker not stopped


@dataclass(frozen=True)
class AttemptStats:
    attempts: int = 0
    retries: int = 0
    avg_duration_ms: float | None = None
    by_type: dict[str, tuple[int, int]] = field(default_factory=dict)  # type: attempts, retries


def _grouped(store: Store, states: tuple[JobState, ...] | None) -> list[TypeCounts]:
    now = store.now_sql()
    runnable = and_(jobs.c.state == JobState.PENDING, jobs.c.next_run_at <= now)
    query = select(
        jobs.c.state,
        jobs.c.job_type,
        func.count(),
        func.sum(case((runnable, 1), else_=0)),
        func.min(case((runnable, jobs.c.next_run_at))),
    ).group_by(jobs.c.state, jobs.c.job_type)
    if states is not None:
        query = query.where(jobs.c.state.in_([str(state) for state in states]))
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return [
        TypeCounts(str(row[0]), str(row[1]), int(row[2]), int(row[3] or 0), row[4]) for row in rows
    ]


def queue_snapshot(store: Store) -> list[TypeCounts]:
    """The queue by (state, job type), scrape-cheap: only the queue's own states."""
    return _grouped(store, QUEUE_STATES)


def job_counts(store: Store) -> list[TypeCounts]:
    """Every job by (state, job type), terminal ones included."""
    return _grouped(store, None)


def worker_snapshot(store: Store, stale_after_seconds: float) -> WorkerSnapshot:
    fresh = workers.c.last_heartbeat >= store.now_sql(-stale_after_seconds)
    query = select(
        store.now_sql().label("now"),
        func.count(case((fresh, 1))),
        func.count(case((~fresh, 1))),
        func.max(workers.c.last_heartbeat),
    ).where(workers.c.stopped_at.is_(None))
    with store.reading() as conn:
        row = conn.execute(query).one()
    return WorkerSnapshot(row[0], int(row[1]), int(row[2]), row[3])


@dataclass(frozen=True)
class UnansweredEffects:
    """The jobs of one type whose effect reconcile asked about without an answer yet."""

    job_type: str
    jobs: int
    oldest_finished_at: datetime | None  # when the longest-unanswered of them ended


def unanswered_effects(store: Store) -> list[UnansweredEffects]:
    """By job type, the jobs reconcile asked about at least once without an answer (a worker's
    first ask still under way counts no ask and is left out)."""
    query = (
        select(jobs.c.job_type, func.count(), func.min(jobs.c.finished_at))
        .select_from(reconcile_asks.join(jobs, jobs.c.id == reconcile_asks.c.job_id))
        .where(reconcile_asks.c.asks > 0)
        .group_by(jobs.c.job_type)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    return [UnansweredEffects(str(row[0]), int(row[1]), row[2]) for row in rows]


def _duration_ms(dialect: str) -> ColumnElement[Any]:
    if dialect == "postgresql":
        return func.extract("epoch", attempts.c.finished_at - attempts.c.started_at) * 1000
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff" in UTC; julianday counts days.
    return (func.julianday(attempts.c.finished_at) - func.julianday(attempts.c.started_at)) * (
        86_400_000.0
    )


def attempt_stats(store: Store) -> AttemptStats:
    """Finished attempts, retries and the average duration, by job type.

    A retry is an attempt that ended retryably (error, timeout, expired lease) and was followed
    by another attempt of its job, or whose job now waits for one: exactly what the worker's
    ``syncbridge_retries_total`` counts as it happens.
    """
    ended = and_(attempts.c.finished_at.is_not(None), attempts.c.outcome != AttemptOutcome.RELEASED)
    retried = and_(
        attempts.c.outcome.in_([str(o) for o in RETRYABLE_OUTCOMES]),
        or_(jobs.c.attempt > attempts.c.number, jobs.c.state == JobState.PENDING),
    )
    timed = attempts.c.outcome.in_([str(o) for o in TIMED_OUTCOMES])
    duration = _duration_ms(store.dialect)
    query = (
        select(
            jobs.c.job_type,
            func.count(case((ended, 1))),
            func.count(case((retried, 1))),
            func.sum(case((timed, duration))),
            func.count(case((timed, 1))),
        )
        .select_from(attempts.join(jobs, jobs.c.id == attempts.c.job_id))
        .group_by(jobs.c.job_type)
    )
    with store.reading() as conn:
        rows = conn.execute(query).all()
    by_type = {str(row[0]): (int(row[1]), int(row[2])) for row in rows}
    timed_total = sum(int(row[4]) for row in rows)
    duration_total = sum(float(row[3] or 0.0) for row in rows)
    return AttemptStats(
        attempts=sum(n for n, _ in by_type.values()),
        retries=sum(r for _, r in by_type.values()),
        avg_duration_ms=round(duration_total / timed_total, 3) if timed_total else None,
        by_type=by_type,
    )
