"""The JSON API under ``/api``. Every handler is a thin call into :class:`Services` (the CLI's
one implementation); refusals become 404/409/422 in ``app.py``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from syncbridge.api.deps import CorrelationId, Svc, page_of
from syncbridge.api.responses import Utf8SafeJSONResponse
from syncbridge.api.schemas import (
    MAX_ID,
    PRINTABLE,
    EffectAnswerIn,
    EnqueueIn,
    EnqueueOut,
    ErrorOut,
    JobDetailOut,
    JobOut,
    JobPage,
    ReplayAllIn,
    ReplayOut,
    ReplayPage,
)
from syncbridge.metrics import summary
from syncbridge.models import Job
from syncbridge.states import JobState

# Declares the scheme in OpenAPI; the middleware enforces it before any handler runs.
bearer = HTTPBearer(auto_error=False, description="SYNCBRIDGE_ADMIN_TOKEN")
_DECLARED_QUERY: dict[int, frozenset[str]] = {}


def refuse_unknown_query(request: Request) -> None:
    """Query parameters an operation does not declare are refused (422), not ignored: a
    misspelt filter (``/api/jobs?stat=dead``) would otherwise answer for every job."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    declared = _DECLARED_QUERY.get(id(route))
    if declared is None:
        declared = _DECLARED_QUERY[id(route)] = frozenset(_query_names(route.dependant))
    unknown = [name for name in request.query_params if name not in declared]
    if unknown:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "unknown query parameter",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ]
        )


def _query_names(dependant: Dependant) -> list[str]:
    """The query parameters of an operation and of every dependency it has."""
    names = [param.alias for param in dependant.query_params]
    for inner in dependant.dependencies:
        names.extend(_query_names(inner))
    return names


router = APIRouter(
    prefix="/api",
    default_response_class=Utf8SafeJSONResponse,
    dependencies=[Depends(refuse_unknown_query)],
)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "Missing or wrong `Authorization: Bearer` token; nothing was changed.",
        404: "No such job (or, on enqueue, no such job type).",
        409: "Illegal transition; nothing was changed.",
        422: "Invalid request.",
        429: "Too many wrong tokens from this address in the last minute; nothing was changed "
        "and the token was not checked. `Retry-After` gives the seconds to wait.",
        503: "The database is unreachable or not migrated.",
    }
    # Where a token is checked, a throttled address can be refused too (``throttle.py``).
    throttled = (429,) if 401 in codes else ()
    return {
        code: {"model": ErrorOut, "description": text[code]} for code in (*codes, *throttled, 503)
    }


MUTATING = [Security(bearer)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="Job id.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Page size.")]
Cursor = Annotated[
    int | None, Query(ge=1, le=MAX_ID, description="`next_cursor` of the previous page.")
]
JobTypeFilter = Annotated[str | None, Query(max_length=100, pattern=PRINTABLE)]


def job_out(job: Job) -> JobOut:
    return JobOut.model_validate(job.to_dict())


@router.post(
    "/jobs/{job_type}",
    status_code=201,
    tags=["jobs"],
    summary="Enqueue a job (201 new, 200 an active duplicate)",
    responses={
        200: {"model": EnqueueOut, "description": "Deduplicated."},
        **_errors(401, 404, 422),
    },
    dependencies=MUTATING,
)
def enqueue(
    job_type: Annotated[str, Path(max_length=100, pattern=PRINTABLE)],
    body: EnqueueIn,
    response: Response,
    services: Svc,
    correlation: CorrelationId,
) -> EnqueueOut:
    if job_type not in services.registry.job_types:  # the path names no collection
        known = ", ".join(sorted(services.registry.job_types)) or "none"
        raise HTTPException(404, f"unknown job type {job_type!r} (installed: {known})")
    result = services.enqueue(
        job_type,
        body.entity_id,
        body.payload,
        idempotency_key=body.idempotency_key,
        correlation_id=correlation,
        max_retries=body.max_retries,
        run_at=body.run_at,
    )
    if result.deduplicated:
        response.status_code = 200
    return EnqueueOut.model_validate(result.job.to_dict() | {"deduplicated": result.deduplicated})


@router.get("/jobs", tags=["jobs"], summary="List jobs, newest first", responses=_errors(422))
def list_jobs(
    services: Svc,
    state: JobState | None = None,
    job_type: JobTypeFilter = None,
    entity_id: Annotated[str | None, Query(max_length=255, pattern=PRINTABLE)] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> JobPage:
    page, next_cursor = page_of(
        services, state=state, job_type=job_type, entity_id=entity_id, limit=limit, cursor=cursor
    )
    return JobPage(items=[job_out(job) for job in page], next_cursor=next_cursor)


@router.get(
    "/jobs/{job_id}",
    tags=["jobs"],
    summary="A job with its attempts and replay lineage",
    responses=_errors(404, 422),
)
def show_job(job_id: JobId, services: Svc) -> JobDetailOut:
    return JobDetailOut.model_validate(services.job_detail(job_id))


@router.post(
    "/jobs/{job_id}/cancel",
    tags=["jobs"],
    summary="Cancel a pending job, or ask a running one to stop",
    responses=_errors(401, 404, 409, 422),
    dependencies=MUTATING,
)
def cancel(job_id: JobId, services: Svc) -> JobOut:
    return job_out(services.cancel(job_id))


@router.post(
    "/jobs/{job_id}/retry",
    tags=["jobs"],
    summary="A failed job back to pending with a fresh retry budget",
    responses=_errors(401, 404, 409, 422),
    dependencies=MUTATING,
)
def retry(job_id: JobId, services: Svc) -> JobOut:
    return job_out(services.retry(job_id))


@router.post(
    "/jobs/{job_id}/effect",
    tags=["jobs"],
    summary="Record your answer for a job whose effect is unknown (no upstream can tell)",
    responses=_errors(401, 404, 409, 422),
    dependencies=MUTATING,
)
def answer_effect(job_id: JobId, body: EffectAnswerIn, services: Svc) -> JobOut:
    return job_out(services.answer_effect(job_id, body.effect_status))


@router.post(
    "/jobs/{job_id}/replay",
    status_code=201,
    tags=["jobs"],
    summary="A new job linked to a dead or failed one (200 on a dry run)",
    responses={200: {"model": ReplayOut, "description": "Dry run."}, **_errors(401, 404, 409, 422)},
    dependencies=MUTATING,
)
def replay(job_id: JobId, services: Svc, response: Response, dry_run: bool = False) -> ReplayOut:
    job = services.replay(job_id, dry_run=dry_run)
    if dry_run:
        response.status_code = 200
        return ReplayOut(replayed_job_id=job_id, new_job_id=None, dry_run=True)
    return ReplayOut(replayed_job_id=job_id, new_job_id=job.id, dry_run=False, job=job_out(job))


@router.get("/dlq", tags=["dlq"], summary="Dead jobs, newest first", responses=_errors(422))
def dlq(
    services: Svc, job_type: JobTypeFilter = None, limit: Limit = 50, cursor: Cursor = None
) -> JobPage:
    page, next_cursor = page_of(
        services, state=JobState.DEAD, job_type=job_type, limit=limit, cursor=cursor
    )
    return JobPage(items=[job_out(job) for job in page], next_cursor=next_cursor)


@router.post(
    "/dlq/replay",
    tags=["dlq"],
    summary="Replay every dead job matching the filters (`replay --all`)",
    responses=_errors(401, 422),
    dependencies=MUTATING,
)
def replay_all(body: ReplayAllIn, services: Svc) -> ReplayPage:
    outcomes = services.replay_all(body.job_type, body.error_class, body.limit, body.dry_run)
    return ReplayPage(
        items=[
            ReplayOut(
                replayed_job_id=old.id,
                new_job_id=new.id if new else None,
                refused=refused,
                dry_run=body.dry_run,
                job=job_out(new) if new else None,
            )
            for old, new, refused in outcomes
        ]
    )


@router.get(
    "/plugins",
    tags=["plugins"],
    summary="Installed plugins and their job types",
    responses=_errors(422),
)
def plugins(services: Svc) -> dict[str, list[dict[str, str]]]:
    registry = services.registry
    return {
        "items": [
            {
                "plugin": name,
                "job_type": job_type,
                "description": registry.job_types[job_type].description,
            }
            for name, types in sorted(registry.plugins.items())
            for job_type in types
        ]
    }


@router.get(
    "/metrics",
    tags=["metrics"],
    summary="JSON summary: totals, success rate, retries, attempt duration, queue depth",
    responses=_errors(422),
)
def metrics_summary(services: Svc) -> dict[str, Any]:
    stale_after = 3 * services.settings.job_lease_seconds
    return summary(services.store, stale_after_seconds=stale_after)
