"""Job states and the legal moves between them (CONTRACT.md)."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DEAD = "dead"
    CANCELLED = "cancelled"


ACTIVE_STATES: frozenset[JobState] = frozenset({JobState.PENDING, JobState.RUNNING})
TERMINAL_STATES: frozenset[JobState] = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.DEAD, JobState.CANCELLED}
)
# Ended without success: the states whose jobs reconcile asks about (after an unknown outcome).
UNSUCCESSFUL_ENDS: frozenset[JobState] = TERMINAL_STATES - {JobState.SUCCEEDED}

LEGAL_MOVES: frozenset[tuple[JobState, JobState]] = frozenset(
    {
        (JobState.PENDING, JobState.RUNNING),
        (JobState.PENDING, JobState.CANCELLED),
        (JobState.RUNNING, JobState.SUCCEEDED),
        (JobState.RUNNING, JobState.PENDING),
        (JobState.RUNNING, JobState.FAILED),
        (JobState.RUNNING, JobState.DEAD),
        (JobState.RUNNING, JobState.CANCELLED),
        (JobState.FAILED, JobState.PENDING),
    }
)


def is_legal(source: JobState, target: JobState) -> bool:
    return (source, target) in LEGAL_MOVES


class AttemptOutcome(StrEnum):
    """How one attempt ended. ``error`` is retryable, ``failed`` terminal."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    ERROR = "error"
    FAILED = "failed"
    TIMEOUT = "timeout"
    LEASE_EXPIRED = "lease_expired"
    RELEASED = "released"
    CANCELLED = "cancelled"


class EffectStatus(StrEnum):
    """What is known of a finished job's effect beyond its state (``jobs.effect_status``): set
    by reconcile for an unknown outcome (or by an operator's answer, ``reconcile --answer``), or
    by a success that a cancel request overrode."""

    APPLIED = "applied"
    NOT_APPLIED = "not_applied"


# Attempts that end without knowing whether an upstream effect happened. A retryable error is
# one of them: a write's answer can be lost after the upstream applied it (a 502 from a proxy, a
# read timeout, a reset connection), and when that was the job's last attempt nothing else
# records the effect (FM_025). Only a terminal refusal (``failed``) is an answer.
UNKNOWN_OUTCOMES: frozenset[AttemptOutcome] = frozenset(
    {
        AttemptOutcome.ERROR,
        AttemptOutcome.LEASE_EXPIRED,
        AttemptOutcome.TIMEOUT,
        AttemptOutcome.CANCELLED,
    }
)


def effect_answer_refusal(
    job_id: int, state: str, effect_status: str | None, outcomes: Iterable[str]
) -> str | None:
    """Why an operator may not answer for this job's effect (``reconcile --answer``), or None:
    only a job that ended without success, has no answer yet, and had an attempt of unknown
    outcome has an unknown effect. The store refuses with it; the UI offers its form only where
    it is None."""
    if state not in UNSUCCESSFUL_ENDS:
        return (
            f"job {job_id} is {state}; only a dead, failed or cancelled job's effect can be unknown"
        )
    if effect_status is not None:
        return f"job {job_id}'s effect is answered already: {effect_status}"
    if not any(outcome in UNKNOWN_OUTCOMES for outcome in outcomes):
        return f"job {job_id}'s effect is not unknown: every attempt ended with a known outcome"
    return None
