"""Converge unknown outcomes: an attempt that ended by lease loss, timeout or cancel during an
upstream call may or may not have applied its effect. For such jobs that are now terminal, ask
the upstream (through the job type's ``reconcile`` function), write the missing ledger row and
record ``effect_status``. A job's state is never changed: history is not rewritten.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select, update

from syncbridge.db.queries import Store
from syncbridge.db.schema import attempts, jobs
from syncbridge.executor import context_for
from syncbridge.jobtypes import effect_key_lineage
from syncbridge.logs import get_logger
from syncbridge.models import Job
from syncbridge.plugins import Registry
from syncbridge.states import TERMINAL_STATES, UNKNOWN_OUTCOMES, EffectStatus, JobState

APPLIED, NOT_APPLIED = str(EffectStatus.APPLIED), str(EffectStatus.NOT_APPLIED)


@dataclass(frozen=True)
class Reconciled:
    job_id: int
    effect_status: str | None  # None: the upstream could not tell now
    upstream_ref: str | None = None
    error: str | None = None


def unreconciled(
    store: Store, job_types: list[str], limit: int, after_id: int = 0, settle_seconds: float = 0.0
) -> list[Job]:
    """Up to ``limit`` jobs to ask about, in id order after ``after_id``: terminal, not
    succeeded, with an attempt of unknown outcome, no ``effect_status`` yet, finished at least
    ``settle_seconds`` ago: an attempt given up on (its deadline, the client's timeout) may
    still have a request on its way or queued upstream. The settle time is a margin for it, not
    a bound; a reconciler whose upstream lists requests in progress also waits for those."""
    unknown = exists().where(
        attempts.c.job_id == jobs.c.id,
        attempts.c.outcome.in_([str(o) for o in UNKNOWN_OUTCOMES]),
    )
    query = (
        select(jobs)
        .where(
            jobs.c.state.in_([str(s) for s in TERMINAL_STATES if s is not JobState.SUCCEEDED]),
            jobs.c.effect_status.is_(None),
            jobs.c.job_type.in_(job_types),
            jobs.c.id > after_id,
            unknown,
        )
        .order_by(jobs.c.id)
        .limit(limit)
    )
    if settle_seconds > 0:
        query = query.where(jobs.c.finished_at <= store.now_sql(-settle_seconds))
    with store.reading() as conn:
        return [Job.from_row(row) for row in conn.execute(query).all()]


def reconcile(
    store: Store,
    registry: Registry,
    upstreams: Mapping[str, Any],
    limit: int = 100,
    worker_id: str = "reconcile",
    *,
    after_id: int = 0,
    settle_seconds: float = 0.0,
) -> list[Reconciled]:
    """Ask about up to ``limit`` jobs after ``after_id`` (see :func:`unreconciled`); one result
    per job asked about, in id order, ``effect_status`` None where the upstream could not tell.
    Callers page on with the last result's ``job_id`` as ``after_id``: a job whose upstream
    keeps failing must not hold back the ones after it."""
    with_reconciler = sorted(n for n, t in registry.job_types.items() if t.reconcile is not None)
    log = get_logger(worker_id=worker_id)
    results: list[Reconciled] = []
    for job in unreconciled(store, with_reconciler, limit, after_id, settle_seconds):
        reconciler = registry.job_types[job.job_type].reconcile
        assert reconciler is not None
        deadline = store.clock.now() + timedelta(minutes=1)
        ctx = context_for(job, worker_id, deadline, log.bind(job_id=job.id), upstreams)
        try:
            effect = reconciler(ctx)
        except Exception as exc:  # the upstream cannot tell now: leave it for the next round
            results.append(Reconciled(job.id, None, error=f"{type(exc).__name__}: {exc}"))
            continue
        made_by = None if effect is None else effect_key_lineage(effect.effect_key)
        if made_by is not None and made_by != job.effective_lineage_id:
            # The upstream holds the effect, but the key it was made with is another lineage's:
            # another job's request made it (found by a drill: a job whose only attempt failed
            # reading the CRM was credited with the invoice a later job created, and that job's
            # ledger row was filed under it). Not this job's effect; that lineage's job, when
            # reconciled or when it succeeds, records it.
            log.info("effect_made_by_another_lineage", job_id=job.id, lineage_id=made_by)
            effect = None
        status = APPLIED if effect is not None else NOT_APPLIED
        with store.engine.begin() as conn:
            # The status first, guarded: where another reconciler (a worker, the CLI) answered
            # for this job meanwhile, its answer stands, and so this one writes no ledger row.
            recorded = conn.execute(
                update(jobs)
                .where(jobs.c.id == job.id, jobs.c.effect_status.is_(None))
                .values(effect_status=status)
            ).rowcount
            if effect is not None and recorded:
                conn.execute(
                    store._ledger_insert().values(
                        effect_key=effect.effect_key,
                        job_id=job.id,
                        lineage_id=job.effective_lineage_id,
                        upstream=effect.upstream,
                        upstream_ref=effect.upstream_ref,
                        applied_at=store.now_sql(),
                    )
                )
            if not recorded:
                status = conn.execute(
                    select(jobs.c.effect_status).where(jobs.c.id == job.id)
                ).scalar_one()
                effect = None
        results.append(Reconciled(job.id, status, effect.upstream_ref if effect else None))
        event = "effect_reconciled" if recorded else "effect_reconciled_meanwhile"
        log.info(event, job_id=job.id, effect_status=status)
    return results
