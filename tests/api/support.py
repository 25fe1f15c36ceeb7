"""Helpers for the API and UI tests: a synchronous httpx client that talks to the ASGI app in
process, and jobs brought to a given state through the real store (claim, then complete)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import anyio
import httpx

from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE = "<img src=x onerror=alert(1)>"
WORKER = "worker-test-1"
UNAVAILABLE = ErrorSnapshot("UpstreamUnavailable", "billing answered 503", True, http_status=503)
INVALID = ErrorSnapshot("ValidationError", "customer has no email", False, http_status=422)


class ASGIBridge(httpx.BaseTransport):
    """httpx's ASGITransport, driven synchronously (one event loop per request); the app sees
    requests come from ``address``."""

    def __init__(self, app: Any, address: str = "127.0.0.1") -> None:
        self.inner = httpx.ASGITransport(app=app, client=(address, 50000))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def call() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, request=request
            )

        return anyio.run(call)


def client_for(app: Any, address: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(transport=ASGIBridge(app, address), base_url="http://testserver")


def enqueue(store: Store, entity_id: str, max_retries: int = 0, **payload: Any) -> Job:
    return store.enqueue(EnqueueRequest("noop", entity_id, payload, max_retries)).job


def _first_in_line(store: Store, entity_id: str) -> Job:
    """A job due before any other, so the next claim takes it."""
    early = store.clock.now() - timedelta(days=1)
    return store.enqueue(EnqueueRequest("noop", entity_id, {}, 0, run_at=early)).job


def run_attempt(
    store: Store,
    job: Job,
    outcome: AttemptOutcome,
    error: ErrorSnapshot | None = None,
    seconds: float = 0.25,
    effects: tuple[AppliedEffect, ...] = (),
) -> Job:
    """Claim ``job`` (it must be the first one due) and end its attempt with ``outcome``
    (reporting ``effects``: the first as the job's own, the others as applied on the way)."""
    claimed = store.claim(WORKER, ["noop"], 1, 60)
    assert [c.id for c in claimed] == [job.id], "another job was due first"
    clock = getattr(store.clock, "advance", None)
    if clock is not None:
        clock(seconds)
    own, on_the_way = (effects[0], effects[1:]) if effects else (None, ())
    store.complete(
        [Completion(job.id, claimed[0].attempt, WORKER, outcome, error, own, on_the_way)]
    )
    return store.get_job(job.id)


def dead_job(store: Store, entity_id: str) -> Job:
    return run_attempt(store, _first_in_line(store, entity_id), AttemptOutcome.ERROR, UNAVAILABLE)


def failed_job(store: Store, entity_id: str) -> Job:
    return run_attempt(store, _first_in_line(store, entity_id), AttemptOutcome.FAILED, INVALID)


def succeeded_job(store: Store, entity_id: str, effects: tuple[AppliedEffect, ...] = ()) -> Job:
    job = _first_in_line(store, entity_id)
    return run_attempt(store, job, AttemptOutcome.SUCCEEDED, effects=effects)


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token in the page"
    return match.group(1)


def snapshot(store: Store) -> list[tuple[int, str, int]]:
    """Enough of every job to see whether anything changed."""
    return [(j.id, j.state, j.attempt) for j in store.list_jobs(limit=10_000)]
