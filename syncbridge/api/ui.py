"""The admin UI's pages (``GET /ui/...``): server-rendered, usable without JavaScript. Reads are
open like the API's; the action buttons appear for a logged-in session."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from syncbridge.api.activity import chart, last_hour
from syncbridge.api.deps import Svc, page_of
from syncbridge.api.schemas import MAX_ID, PRINTABLE
from syncbridge.api.views import legal_actions, render
from syncbridge.errors import IllegalTransition, InvalidInput
from syncbridge.models import Job
from syncbridge.states import JobState, effect_answer_refusal

router = APIRouter(prefix="/ui", include_in_schema=False)
Text = Annotated[str, Query(max_length=255, pattern=PRINTABLE)]
JobId = Annotated[int, Path(ge=1, le=MAX_ID)]
DONE = {
    "cancel": "Cancel requested.",
    "retry": "Sent back to pending with a fresh retry budget.",
    "replay": "Replayed.",
    "enqueue": "Enqueued.",
    "deduplicated": "An active job for this entity already existed; this is it.",
    "effect": "Your answer is recorded; nobody asks about this job's effect any more.",
}


@router.get("/")
def dashboard(request: Request, services: Svc) -> Response:
    store = services.store
    counts = store.counts_by_state()
    return render(
        request,
        "dashboard.html",
        counts=counts,
        total=sum(counts.values()),
        chart=chart(last_hour(store)),
        workers=store.live_workers(),
        job_types=sorted(services.registry.job_types),
    )


@router.get("/jobs")
def jobs(
    request: Request,
    services: Svc,
    state: Text = "",
    job_type: Text = "",
    entity_id: Text = "",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    if state and state not in set(JobState):
        raise InvalidInput(f"unknown state {state!r}")
    filters = {"state": state, "job_type": job_type, "entity_id": entity_id}
    page, next_cursor = page_of(
        services,
        state=state or None,
        job_type=job_type or None,
        entity_id=entity_id or None,
        limit=limit,
        cursor=cursor,
    )
    given = {key: value for key, value in filters.items() if value}
    return render(
        request,
        "jobs.html",
        jobs=page,
        filters=filters,
        next_query=given | {"cursor": next_cursor, "limit": limit} if next_cursor else None,
        first_query=given if cursor else None,
        job_types=sorted(services.registry.job_types),
    )


@router.get("/jobs/{job_id}")
def job_detail(
    request: Request,
    services: Svc,
    job_id: JobId,
    done: Annotated[str, Query(max_length=20)] = "",
    new: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> Response:
    detail = services.job_detail(job_id)
    actions = legal_actions(detail["state"])
    refusal = None
    if "replay" in actions:
        try:
            services.replay(job_id, dry_run=True)
        except IllegalTransition as exc:
            refusal = str(exc)
    longest = max((a["duration_ms"] or 0.0 for a in detail["attempts"]), default=0.0)
    # The form is offered only where Store.answer_effect would take the answer.
    outcomes = (attempt["outcome"] for attempt in detail["attempts"])
    answerable = (
        effect_answer_refusal(job_id, detail["state"], detail["effect_status"], outcomes) is None
    )
    return render(
        request,
        "job.html",
        job=detail,
        actions=actions,
        answerable=answerable,
        replay_refusal=refusal,
        longest_ms=longest,
        notice=DONE.get(done),
        new_job_id=new,
    )


@router.get("/dlq")
def dlq(request: Request, services: Svc, job_type: Text = "") -> Response:
    store = services.store
    dead = store.dlq(job_type or None, limit=500)
    failed = store.list_jobs(state=JobState.FAILED, job_type=job_type or None, limit=200)
    unreplayed = {job.id for job in store.replay_candidates(job_type or None, None, None)}
    return render(
        request,
        "dlq.html",
        dead_groups=_by_error_class(dead),
        failed_groups=_by_error_class(failed),
        replayed={job.id for job in dead} - unreplayed,
        dead_total=len(dead),
        failed_total=len(failed),
        job_type=job_type,
        job_types=sorted(services.registry.job_types),
    )


def _by_error_class(found: list[Job]) -> list[tuple[str, list[Job]]]:
    groups: dict[str, list[Job]] = defaultdict(list)
    for job in found:
        groups[str((job.last_error or {}).get("class") or "unknown")].append(job)
    return sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
