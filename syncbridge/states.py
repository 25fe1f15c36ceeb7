"""Job states and the legal moves between them (CONTRACT.md)."""

from __future__ import annotations

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
