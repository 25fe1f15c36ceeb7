"""Converge unknown outcomes: an attempt that ended by lease loss, timeout or cancel during an
upstream call may or may not have applied its effect. For such jobs that are now terminal, ask
the upstream (through the job type's ``reconcile`` function), write the missing ledger row and
record ``effect_status``. A job's state is never changed: history is not rewritten.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from syncbridge.db.queries import Store
from syncbridge.executor import context_for
from syncbridge.jobtypes import effect_key_lineage
from syncbridge.logs import get_logger
from syncbridge.plugins import Registry
from syncbridge.retry import RetryPolicy
from syncbridge.states import EffectStatus

APPLIED, NOT_APPLIED = str(EffectStatus.APPLIED), str(EffectStatus.NOT_APPLIED)


# When to ask again about a job whose upstream could not tell: 30 to 60 s after the first ask,
# doubling up to an hour (the jobs' retry curve with its jitter, through tenacity), so that jobs
# nobody can answer for (a record gone upstream) cost a few asks an hour, not one every round.
ASK_AGAIN = RetryPolicy(base_seconds=60.0, cap_seconds=3600.0)
# How long a worker's round holds the due jobs it took (Store.take_due), and how long before the
# hold ends it stops asking (longer than one ask may take: the upstream client's timeout).
HOLD_SECONDS = 300.0
HOLD_MARGIN_SECONDS = 60.0


@dataclass(frozen=True)
class Reconciled:
    job_id: int
    effect_status: str | None  # None: the upstream could not tell now
    upstream_ref: str | None = None
    error: str | None = None
    # Where the upstream could not tell: how often it was asked, and when the workers ask next.
    asks: int | None = None
    next_ask_at: datetime | None = None


def reconcile(
    store: Store,
    registry: Registry,
    upstreams: Mapping[str, Any],
    limit: int = 100,
    worker_id: str = "reconcile",
    *,
    after_id: int = 0,
    settle_seconds: float = 0.0,
    due_only: bool = False,
    stop_requested: Callable[[], bool] | None = None,
) -> list[Reconciled]:
    """Ask about up to ``limit`` jobs after ``after_id`` (see :meth:`Store.unreconciled`); one
    result per job asked about, in id order, ``effect_status`` None where the upstream could not
    tell (the job is then asked about again after :data:`ASK_AGAIN`'s delay). ``due_only``
    (workers): only the jobs whose next ask is due, each taken so that other workers leave it
    (:meth:`Store.take_due`); otherwise every job, due or not (the command).
    Callers page on with the last result's ``job_id`` as ``after_id``: a job whose upstream
    keeps failing must not hold back the ones after it. ``stop_requested`` (a stopping worker)
    ends the round before its next ask; a round that ends early gives back its hold on the jobs
    it did not ask about, so they are due again at once for the other workers."""
    with_reconciler = sorted(n for n, t in registry.job_types.items() if t.reconcile is not None)
    log = get_logger(worker_id=worker_id)
    results: list[Reconciled] = []
    if due_only:
        jobs = store.take_due(
            with_reconciler, limit, after_id, settle_seconds, HOLD_SECONDS, held_by=worker_id
        )
    else:
        jobs = store.unreconciled(with_reconciler, limit, after_id, settle_seconds)
    # A round's hold on its jobs must not run out while it asks (a hanging upstream, each ask up
    # to the client's timeout): past it, the jobs not yet asked are the other workers' again.
    stop_asking_at = time.monotonic() + HOLD_SECONDS - HOLD_MARGIN_SECONDS
    for index, job in enumerate(jobs):
        stopping = stop_requested is not None and stop_requested()
        if due_only and (stopping or time.monotonic() >= stop_asking_at):
            reason = "worker stopping" if stopping else "hold running out"
            left = [later_job.id for later_job in jobs[index:]]
            store.release_holds(left, held_by=worker_id)
            log.info("reconcile_round_stopped", job_id=job.id, reason=reason, released=len(left))
            break
        reconciler = registry.job_types[job.job_type].reconcile
        assert reconciler is not None
        deadline = store.clock.now() + timedelta(minutes=1)
        ctx = context_for(job, worker_id, deadline, log.bind(job_id=job.id), upstreams)
        try:
            effect = reconciler(ctx)
        except Exception as exc:  # the upstream cannot tell now: ask again later
            error = f"{type(exc).__name__}: {exc}"
            later = store.ask_again_later(
                job.id, error, ASK_AGAIN.delay, scheduled=due_only, held_by=worker_id
            )
            if later is None:  # answered by another reconciler meanwhile, pruned or retried
                standing = store.effect_status_of(job.id)
                if standing is not None:
                    results.append(Reconciled(job.id, standing))
                continue
            results.append(Reconciled(job.id, None, None, error, later.asks, later.next_ask_at))
            log.info(
                "effect_unknown_ask_later",
                job_id=job.id,
                asks=later.asks,
                next_ask_at=later.next_ask_at.isoformat(),
                error=error[:200],
            )
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
        recorded, standing = store.record_effect_status(job, status, effect)
        if standing is None:  # pruned or retried meanwhile: nothing to record it on
            continue
        ref = effect.upstream_ref if effect is not None and recorded else None
        results.append(Reconciled(job.id, standing, ref))
        event = "effect_reconciled" if recorded else "effect_reconciled_meanwhile"
        log.info(event, job_id=job.id, effect_status=standing)
    return results
