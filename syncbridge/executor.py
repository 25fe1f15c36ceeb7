"""Runs one attempt of a handler and maps how it ended to an attempt outcome.

Classification is data: the error's class says whether it is retryable (``errors.py``); an
exception outside the tree is retryable and recorded under its own class name.
"""

from __future__ import annotations

import contextvars
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from syncbridge.errors import SyncBridgeError, UpstreamRateLimited
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success
from syncbridge.models import ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome

TRACEBACK_TAIL_LINES = 12
MESSAGE_LIMIT = 2000


@dataclass(frozen=True)
class AttemptReport:
    outcome: AttemptOutcome
    error: ErrorSnapshot | None = None
    effect: AppliedEffect | None = None


def classify(exc: BaseException) -> AttemptReport:
    tail = "".join(traceback.format_exception(exc)[-TRACEBACK_TAIL_LINES:])
    if isinstance(exc, SyncBridgeError):
        retryable = exc.retryable
        http_status = exc.http_status
    else:
        retryable, http_status = True, None
    snapshot = ErrorSnapshot(
        error_class=type(exc).__name__,
        message=(str(exc) or type(exc).__name__)[:MESSAGE_LIMIT],
        retryable=retryable,
        http_status=http_status,
        retry_after=exc.retry_after if isinstance(exc, UpstreamRateLimited) else None,
        traceback_tail=tail[-4000:],
    )
    outcome = AttemptOutcome.ERROR if retryable else AttemptOutcome.FAILED
    return AttemptReport(outcome, error=snapshot)


def context_for(
    job: Job, worker_id: str, deadline: datetime, log: Any, upstreams: Mapping[str, Any]
) -> JobContext:
    """What a handler (or a reconciler) is told about the job it works on."""
    return JobContext(
        job_id=job.id,
        job_type=job.job_type,
        entity_id=job.entity_id,
        payload=job.payload,
        attempt=job.attempt,
        correlation_id=job.correlation_id,
        lineage_id=job.effective_lineage_id,
        worker_id=worker_id,
        deadline=deadline,
        log=log,
        upstreams=upstreams,
    )


def run_attempt(job_type: JobType, ctx: JobContext) -> AttemptReport:
    """Run the handler in a fresh context with the job's log context bound (pool threads do not
    carry context variables across jobs by themselves)."""
    return contextvars.Context().run(_invoke, job_type, ctx)


def _invoke(job_type: JobType, ctx: JobContext) -> AttemptReport:
    structlog.contextvars.bind_contextvars(
        job_id=ctx.job_id,
        job_type=ctx.job_type,
        entity_id=ctx.entity_id,
        attempt=ctx.attempt,
        correlation_id=ctx.correlation_id,
        worker_id=ctx.worker_id,
    )
    try:
        result = job_type.handler(ctx)
    except Exception as exc:  # every handler failure is recorded, classified, never swallowed
        report = classify(exc)
        if ctx.stop_reason == "cancel requested":
            return AttemptReport(AttemptOutcome.CANCELLED, error=report.error)
        return report
    if result is not None and not isinstance(result, Success):
        return classify(
            TypeError(
                f"handler for {job_type.name!r} returned {type(result).__name__}, "
                "expected Success or None"
            )
        )
    return AttemptReport(AttemptOutcome.SUCCEEDED, effect=result.effect if result else None)
