"""The state machine in one place: given a running job and how its attempt ended, what happens.

Read it as a table:

=====================  ==================  =========================================
attempt outcome        condition           job becomes
=====================  ==================  =========================================
succeeded              cancel requested    cancelled (its effect recorded as applied)
succeeded              -                   succeeded
failed (terminal)      cancel requested    cancelled
failed (terminal)      -                   failed
error / timeout        cancel requested    cancelled
error / timeout        budget spent        dead
error / timeout        -                   pending after backoff
cancelled              -                   cancelled
released (shutdown)    cancel requested    cancelled
released (shutdown)    -                   pending now, attempt not charged
lease_expired          cancel requested    cancelled
lease_expired          budget spent        dead
lease_expired          -                   pending after backoff, runs isolated next
=====================  ==================  =========================================

Every terminal row also enqueues one fresh job for the entity when an enqueue came in during the
run (``follow_up``), in the same transaction.

A cancel request wins over a success that arrives after it (CONTRACT: a running job "becomes
``cancelled`` when its attempt ends"), but history stays true: the attempt is recorded as
``succeeded``, its effect gets its ledger row, and the job's ``effect_status`` says ``applied``.
"""

from __future__ import annotations

from dataclasses import dataclass

from syncbridge.models import Job
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome, JobState


@dataclass(frozen=True)
class Transition:
    state: JobState
    delay_seconds: float = 0.0
    charge: bool = True
    isolate: bool = False
    enqueue_follow_up: bool = False


def decide(
    job: Job, outcome: AttemptOutcome, policy: RetryPolicy, retry_after: float | None = None
) -> Transition:
    # A terminal end consumes a pending follow-up: the change enqueued during the run gets its
    # own fresh job whatever became of this one (a failed run must not swallow it).
    follow_up = job.follow_up
    if outcome is AttemptOutcome.SUCCEEDED and not job.cancel_requested:
        return Transition(JobState.SUCCEEDED, enqueue_follow_up=follow_up)
    if outcome is AttemptOutcome.CANCELLED or job.cancel_requested:
        # Before RELEASED: a job cancelled while running and then released at shutdown must
        # not come back to run again.
        return Transition(JobState.CANCELLED, enqueue_follow_up=follow_up)
    if outcome is AttemptOutcome.RELEASED:
        return Transition(JobState.PENDING, charge=False, isolate=job.isolate)
    if outcome is AttemptOutcome.FAILED:
        return Transition(JobState.FAILED, enqueue_follow_up=follow_up)
    if outcome in (AttemptOutcome.ERROR, AttemptOutcome.TIMEOUT, AttemptOutcome.LEASE_EXPIRED):
        if job.charged_attempts >= job.max_retries + 1:
            return Transition(JobState.DEAD, enqueue_follow_up=follow_up)
        return Transition(
            JobState.PENDING,
            delay_seconds=policy.delay(job.charged_attempts, retry_after),
            isolate=outcome is AttemptOutcome.LEASE_EXPIRED,
        )
    raise ValueError(f"an attempt cannot end as {outcome!r}")
