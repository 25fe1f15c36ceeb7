"""FM_027: cancelling a job that carries a follow-up loses the change enqueued during its run.

An enqueue while the job ran marked it for a follow-up; the run then ended without a terminal
state (released at shutdown, or a retryable error): the job is pending again, flag still set.
An operator cancels it. Found by ``test_stateful.py``. Unsafe variant: a cancel that ignores the
flag, which is what ``OperatorStore.cancel`` does today for a pending job: the prevent test for
that path was a strict xfail until the fix (cancel enqueues the follow-up). The running path:
``transitions.decide`` consumes the follow-up on every terminal outcome, cancelled included.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.errors import IllegalTransition
from syncbridge.models import Completion, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import request, violations

UNAVAILABLE = ErrorSnapshot("UpstreamUnavailable", "503", True, 503)


class CancelIgnoresFollowUp(Store):
    """Unsafe: a pending job is simply marked cancelled."""

    def cancel(self, job_id: int) -> Job:
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state == JobState.PENDING)
                .values(state=JobState.CANCELLED, finished_at=self.now_sql())
            ).rowcount
        if not changed:
            raise IllegalTransition(f"job {job_id} is not pending")
        return self.get_job(job_id)


def changed_during_a_run(store: Store, outcome: AttemptOutcome) -> Job:
    """Claim, enqueue again (a change upstream), end the attempt with ``outcome``."""
    job = store.enqueue(request("c_1001")).job
    store.claim("w", ["noop"], 1, lease_seconds=60)
    assert store.enqueue(request("c_1001")).follow_up_marked
    error = UNAVAILABLE if outcome is AttemptOutcome.ERROR else None
    [result] = store.complete([Completion(job.id, 1, "w", outcome, error)])
    assert result.applied
    return store.get_job(job.id)


def others(store: Store, job: Job) -> list[Job]:
    return [j for j in store.list_jobs(entity_id=job.entity_id) if j.id != job.id]


def test_repro_cancel_ignoring_the_flag_loses_the_change(store: Store, clock: FakeClock) -> None:
    unsafe = CancelIgnoresFollowUp(store.engine, clock)
    job = changed_during_a_run(unsafe, AttemptOutcome.RELEASED)
    assert (job.state, job.follow_up) == (JobState.PENDING, True)
    assert unsafe.cancel(job.id).state is JobState.CANCELLED
    assert others(unsafe, job) == []  # nobody will sync the change
    assert violations(unsafe) == {"INV_008": 1}  # syncbridge check would exit 1


def test_prevented_cancel_of_a_running_job_enqueues_its_follow_up(store: Store) -> None:
    job = store.enqueue(request("c_1001")).job
    store.claim("w", ["noop"], 1, lease_seconds=60)
    assert store.enqueue(request("c_1001")).follow_up_marked
    assert store.cancel(job.id).cancel_requested
    cancelled = Completion(job.id, 1, "w", AttemptOutcome.CANCELLED)
    [result] = store.complete([cancelled])
    assert result.state is JobState.CANCELLED and result.follow_up_job_id is not None
    assert [j.state for j in others(store, job)] == [JobState.PENDING]
    assert violations(store) == {}


@pytest.mark.parametrize("outcome", [AttemptOutcome.RELEASED, AttemptOutcome.ERROR])
def test_prevented_cancel_of_a_pending_job_enqueues_its_follow_up(
    store: Store, outcome: AttemptOutcome
) -> None:
    job = changed_during_a_run(store, outcome)
    assert (job.state, job.follow_up) == (JobState.PENDING, True)
    assert store.cancel(job.id).state is JobState.CANCELLED
    assert [j.state for j in others(store, job)] == [JobState.PENDING]
    assert violations(store) == {}
