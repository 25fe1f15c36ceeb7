"""FM_010: an upstream change enqueued while the entity's job runs is never synced.

The running job read the CRM record before the change; the enqueue that reports the change meets
the active job and is deduplicated. Unsafe variant: deduplication that returns the running job
and does nothing else. Prevention: ``LifecycleStore.enqueue`` marks the running job
``follow_up`` (with the latest payload); its success inserts exactly one fresh pending job in the
same transaction (``LifecycleStore._record``); ``invariants`` INV_008 flags a succeeded job whose
follow-up was never consumed.
"""

from __future__ import annotations

import pytest

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.models import Completion, EnqueueRequest, EnqueueResult, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import request, violations

ENTITY = "customer-7"


class DedupeOnlyStore(Store):
    """Unsafe: an enqueue for an entity with an active job just returns that job."""

    def enqueue(self, request: EnqueueRequest) -> EnqueueResult:
        with self.engine.connect() as conn:
            active = self._active_job(conn, request.job_type, request.entity_id)
        if active is not None:
            return EnqueueResult(job=active, deduplicated=True)
        return super().enqueue(request)


def change_during_run(store: Store) -> tuple[Job, list[EnqueueResult]]:
    """Version 1 is being synced when versions 2 and 3 of the record are reported."""
    store.enqueue(request(ENTITY, payload={"version": 1}))
    [running] = store.claim("w1", ["noop"], 1, 60)
    during = [store.enqueue(request(ENTITY, payload={"version": v})) for v in (2, 3)]
    assert all(r.deduplicated and r.job.id == running.id for r in during)
    return running, during


def succeed(store: Store, job: Job) -> Job | None:
    [done] = store.complete([Completion(job.id, job.attempt, "w1", AttemptOutcome.SUCCEEDED)])
    assert done.applied and done.state is JobState.SUCCEEDED
    return store.get_job(done.follow_up_job_id) if done.follow_up_job_id else None


def test_repro_dedupe_without_follow_up_loses_the_change(store: Store, clock: FakeClock) -> None:
    unsafe = DedupeOnlyStore(store.engine, clock)
    running, during = change_during_run(unsafe)
    assert not any(r.follow_up_marked for r in during)
    assert succeed(unsafe, running) is None
    jobs = unsafe.list_jobs(entity_id=ENTITY)
    assert [(j.state, j.payload) for j in jobs] == [(JobState.SUCCEEDED, {"version": 1})]
    # Versions 2 and 3 were accepted (the caller got a job id) and will never be synced; the
    # checks cannot see it, since no flag was ever set.
    assert violations(unsafe) == {}


def test_prevented_success_enqueues_exactly_one_follow_up(store: Store, clock: FakeClock) -> None:
    running, during = change_during_run(store)
    assert all(r.follow_up_marked for r in during)
    assert store.get_job(running.id).follow_up
    follow_up = succeed(store, running)
    assert follow_up is not None
    assert follow_up.state is JobState.PENDING and follow_up.payload == {"version": 3}
    assert [j.id for j in store.list_jobs(entity_id=ENTITY, state="pending")] == [follow_up.id]
    assert violations(store) == {}

    [again] = store.claim("w1", ["noop"], 1, 60)
    assert again.id == follow_up.id
    assert succeed(store, again) is None  # nothing changed during this run: no further job
    states = [j.state for j in store.list_jobs(entity_id=ENTITY)]
    assert states == [JobState.SUCCEEDED, JobState.SUCCEEDED]
    assert violations(store) == {}


@pytest.mark.parametrize("outcome", [AttemptOutcome.FAILED, AttemptOutcome.ERROR])
def test_prevented_follow_up_survives_a_run_that_does_not_succeed(
    store: Store, outcome: AttemptOutcome
) -> None:
    store.enqueue(request(ENTITY, payload={"version": 1}, max_retries=0))
    [running] = store.claim("w1", ["noop"], 1, 60)
    assert store.enqueue(request(ENTITY, payload={"version": 2})).follow_up_marked
    retryable = outcome is AttemptOutcome.ERROR
    error = ErrorSnapshot("ValidationError", "version 1 is invalid", retryable)
    [done] = store.complete([Completion(running.id, running.attempt, "w1", outcome, error)])
    assert done.state in (JobState.FAILED, JobState.DEAD)
    pending = store.list_jobs(entity_id=ENTITY, state="pending")
    assert [j.payload for j in pending] == [{"version": 2}]  # the fix may arrive in version 2
    assert violations(store) == {}
