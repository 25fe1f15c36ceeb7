"""The state machine table and the retry curve, without a database."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from syncbridge.models import Job
from syncbridge.retry import RETRY_AFTER_CAP_SECONDS, RetryPolicy
from syncbridge.states import LEGAL_MOVES, AttemptOutcome, JobState, is_legal
from syncbridge.transitions import decide

T0 = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(base_seconds=2, cap_seconds=3600)


def running(attempt: int = 1, max_retries: int = 3, **kw: object) -> Job:
    job = Job(
        id=1,
        job_type="noop",
        entity_id="e",
        payload={},
        state=JobState.RUNNING,
        attempt=attempt,
        budget_start=0,
        max_retries=max_retries,
        timeout_seconds=None,
        next_run_at=T0,
        lease_owner="w",
        lease_expires_at=T0,
        cancel_requested=False,
        isolate=False,
        follow_up=False,
        follow_up_payload=None,
        correlation_id="c",
        idempotency_key=None,
        params_hash="h",
        lineage_id=1,
        replay_of_job_id=None,
        replay_of_attempt_id=None,
        last_error=None,
        effect_status=None,
        created_at=T0,
        updated_at=T0,
        finished_at=None,
    )
    return replace(job, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("outcome", "job_kw", "state"),
    [
        (AttemptOutcome.SUCCEEDED, {}, JobState.SUCCEEDED),
        # CONTRACT: a running job asked to stop "becomes cancelled when its attempt ends".
        (AttemptOutcome.SUCCEEDED, {"cancel_requested": True}, JobState.CANCELLED),
        (AttemptOutcome.FAILED, {}, JobState.FAILED),
        (AttemptOutcome.FAILED, {"cancel_requested": True}, JobState.CANCELLED),
        (AttemptOutcome.ERROR, {}, JobState.PENDING),
        (AttemptOutcome.ERROR, {"attempt": 4}, JobState.DEAD),
        (AttemptOutcome.ERROR, {"cancel_requested": True}, JobState.CANCELLED),
        (AttemptOutcome.TIMEOUT, {}, JobState.PENDING),
        (AttemptOutcome.TIMEOUT, {"attempt": 4}, JobState.DEAD),
        (AttemptOutcome.LEASE_EXPIRED, {}, JobState.PENDING),
        (AttemptOutcome.LEASE_EXPIRED, {"attempt": 4}, JobState.DEAD),
        (AttemptOutcome.CANCELLED, {}, JobState.CANCELLED),
        (AttemptOutcome.RELEASED, {"attempt": 4}, JobState.PENDING),
        (AttemptOutcome.RELEASED, {"cancel_requested": True}, JobState.CANCELLED),
    ],
)
def test_decision_table(
    outcome: AttemptOutcome, job_kw: dict[str, object], state: JobState
) -> None:
    transition = decide(running(**job_kw), outcome, POLICY)  # type: ignore[arg-type]
    assert transition.state is state
    assert is_legal(JobState.RUNNING, transition.state)


def test_release_is_not_charged_and_lease_loss_isolates() -> None:
    assert decide(running(), AttemptOutcome.RELEASED, POLICY).charge is False
    assert decide(running(), AttemptOutcome.LEASE_EXPIRED, POLICY).isolate is True
    assert decide(running(), AttemptOutcome.ERROR, POLICY).isolate is False


def test_budget_counts_from_the_last_manual_retry() -> None:
    assert decide(running(attempt=6, budget_start=3), AttemptOutcome.ERROR, POLICY).state is (
        JobState.PENDING
    )
    assert decide(running(attempt=7, budget_start=3), AttemptOutcome.ERROR, POLICY).state is (
        JobState.DEAD
    )


def test_follow_up_on_every_terminal_end_not_on_retry() -> None:
    assert decide(running(follow_up=True), AttemptOutcome.SUCCEEDED, POLICY).enqueue_follow_up
    assert not decide(running(follow_up=True), AttemptOutcome.ERROR, POLICY).enqueue_follow_up
    assert decide(running(follow_up=True), AttemptOutcome.FAILED, POLICY).enqueue_follow_up
    assert decide(
        running(follow_up=True, attempt=4), AttemptOutcome.ERROR, POLICY
    ).enqueue_follow_up


def test_legal_moves_are_the_contract() -> None:
    assert len(LEGAL_MOVES) == 8
    assert not is_legal(JobState.DEAD, JobState.PENDING)
    assert not is_legal(JobState.SUCCEEDED, JobState.RUNNING)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 6])
def test_backoff_is_base_times_two_to_the_k_minus_one_with_equal_jitter(k: int) -> None:
    nominal = 2 * 2 ** (k - 1)
    delays = [POLICY.delay(k) for _ in range(300)]
    assert all(nominal / 2 <= d <= nominal for d in delays)
    assert len({round(d, 6) for d in delays}) > 250  # jittered, not lock-step


def test_backoff_cap_and_retry_after() -> None:
    capped = RetryPolicy(base_seconds=2, cap_seconds=10)
    assert all(capped.delay(30) <= 10 for _ in range(100))
    assert POLICY.delay(1, retry_after=120) >= 120
    assert POLICY.delay(1, retry_after=10**9) == RETRY_AFTER_CAP_SECONDS
    assert RetryPolicy(base_seconds=0).delay(5) == 0
