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
from syncbridge.models import ClaimedJob, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome

TRACEBACK_TAIL_LINES = 12
MESSAGE_LIMIT = 2000
TRACEBACK_LIMIT = 4000
ERROR_CLASS_LIMIT = 200  # attempts.error_class


@dataclass(frozen=True)
class AttemptReport:
    outcome: AttemptOutcome
    error: ErrorSnapshot | None = None
    effect: AppliedEffect | None = None
    also_applied: tuple[AppliedEffect, ...] = ()


def storable(text: str, limit: int, keep_end: bool = False) -> str:
    """``text`` as both databases store it: lone surrogates (no UTF-8 form) and NUL (which
    PostgreSQL refuses in text) written as backslash escapes, then cut to ``limit`` characters.
    An exception's text is whatever a handler or an upstream put there; one unstorable
    character must not make the outcome unwritable (the writer would retry it forever and
    every outcome queued behind it would wait)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return text[-limit:] if keep_end else text[:limit]


def classify(exc: BaseException) -> AttemptReport:
    tail = "".join(traceback.format_exception(exc)[-TRACEBACK_TAIL_LINES:])
    if isinstance(exc, SyncBridgeError):
        retryable = exc.retryable
        http_status = exc.http_status
    else:
        retryable, http_status = True, None
    name = type(exc).__name__
    snapshot = ErrorSnapshot(
        error_class=storable(name, ERROR_CLASS_LIMIT),
        message=storable(str(exc) or name, MESSAGE_LIMIT),
        retryable=retryable,
        http_status=http_status,
        retry_after=exc.retry_after if isinstance(exc, UpstreamRateLimited) else None,
        traceback_tail=storable(tail, TRACEBACK_LIMIT, keep_end=True),
    )
    outcome = AttemptOutcome.ERROR if retryable else AttemptOutcome.FAILED
    return AttemptReport(outcome, error=snapshot)


def context_for(
    job: Job | ClaimedJob,
    worker_id: str,
    deadline: datetime,
    log: Any,
    upstreams: Mapping[str, Any],
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
    if result is None:
        return AttemptReport(AttemptOutcome.SUCCEEDED)
    return AttemptReport(AttemptOutcome.SUCCEEDED, None, result.effect, result.also_applied)
