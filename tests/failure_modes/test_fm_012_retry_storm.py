"""FM_012: a hundred jobs fail with 503 at once and come back in lock-step.

Unsafe variant: a retry policy without jitter: every job that failed at the same instant gets the
same ``next_run_at``, and each retry wave hits the recovering upstream all at once. Prevention:
``RetryPolicy`` (``retry.py``) with equal jitter (half fixed, half uniform): the waves spread out
and no retry comes back instantly; the budget (``transitions.decide``) bounds the total.

The upstream stays down; the injected clock steps through the retries, a worker claiming every
due job at each step.
"""

from __future__ import annotations

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.models import Completion, ErrorSnapshot, Job
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome, JobState
from tests.failure_modes.support import request, violations

JOBS = 100
MAX_RETRIES = 3
BASE = 2.0
STEP = 0.1  # seconds of clock per claim round
UNAVAILABLE = ErrorSnapshot("UpstreamUnavailable", "503 from Billing", True, http_status=503)


class NoJitterPolicy(RetryPolicy):
    """Unsafe: plain exponential backoff, ``base * 2^(k-1)``."""

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        return float(min(self.cap_seconds, self.base_seconds * 2 ** (max(1, retry_number) - 1)))


def fail(job: Job) -> Completion:
    return Completion(job.id, job.attempt, "w", AttemptOutcome.ERROR, UNAVAILABLE)


def storm(store: Store, clock: FakeClock, policy: RetryPolicy) -> tuple[list[int], set[float]]:
    """Run every job until the budget is spent. Returns the sizes of the claim rounds after the
    first wave (the load the upstream sees per step) and the distinct delays of the first retry."""
    for n in range(JOBS):
        store.enqueue(request(f"c_{1000 + n}", max_retries=MAX_RETRIES))
    waves: list[int] = []
    first_delays: set[float] = set()
    dead = 0
    for step in range(2000):
        batch = store.claim("w", ["noop"], JOBS, lease_seconds=60)
        if step > 0 and batch:
            waves.append(len(batch))
        now = clock.now()
        results = store.complete([fail(job) for job in batch], policy)
        dead += sum(result.state is JobState.DEAD for result in results)
        if step == 0:
            jobs = store.list_jobs(limit=JOBS)
            first_delays = {(job.next_run_at - now).total_seconds() for job in jobs}
        if dead == JOBS:
            break
        clock.advance(STEP)
    return waves, first_delays


def test_repro_without_jitter_the_retries_come_back_in_lock_step(
    store: Store, clock: FakeClock
) -> None:
    waves, first_delays = storm(store, clock, NoJitterPolicy(BASE))
    assert first_delays == {BASE}  # a hundred identical next_run_at
    assert waves == [JOBS] * MAX_RETRIES  # every retry wave: all hundred in one instant
    assert store.counts_by_state()["dead"] == JOBS


def test_prevented_equal_jitter_spreads_the_retries(store: Store, clock: FakeClock) -> None:
    waves, first_delays = storm(store, clock, RetryPolicy(BASE))
    assert len(first_delays) >= JOBS * 0.9  # (almost) every job its own retry time
    assert min(first_delays) >= BASE / 2 and max(first_delays) <= BASE  # never instant
    assert max(first_delays) - min(first_delays) >= BASE / 4
    assert max(waves) <= JOBS * 0.3  # the upstream sees a trickle, not a wave
    # Bounded: every job spent exactly its budget, no more.
    assert all(j.state is JobState.DEAD for j in store.list_jobs(limit=JOBS))
    attempts = sum(len(store.attempts_of(j.id)) for j in store.list_jobs(limit=JOBS))
    assert attempts <= JOBS * (MAX_RETRIES + 1)
    assert violations(store) == {}
