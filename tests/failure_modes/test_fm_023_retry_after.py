"""FM_023: Billing answers 429 with ``Retry-After``; the next attempt must wait at least that long.

Real mock servers: Billing rate-limits ``c_1002`` (its first two writes get 429 and
``Retry-After: RETRY_AFTER``). The engine's own backoff is tiny here, so only ``Retry-After``
can make the worker wait. Unsafe variant: a retry policy that ignores ``retry_after``.
Prevention: ``UpstreamClient`` parses the header into ``UpstreamRateLimited.retry_after``;
``transitions.decide`` passes it to ``RetryPolicy.delay``, which takes the longer of the backoff
and ``Retry-After`` (capped at an hour).
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise

import pytest

from syncbridge.clock import FakeClock
from syncbridge.db.queries import Store
from syncbridge.models import Completion, ErrorSnapshot
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome, JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.failure_modes.test_fm_02_kit import (
    Mocks,
    all_finished,
    mocks_for,
    real_registry,
    run_workers,
    settings_for,
    worker,
)

CUSTOMER = "c_1002"  # rate-limited by Billing's defaults
RETRY_AFTER = 0.6
BASE = 0.02  # the engine's own backoff: far shorter than Retry-After


class IgnoresRetryAfter(RetryPolicy):
    """Unsafe: plain backoff; the upstream's Retry-After is dropped."""

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        return super().delay(retry_number, None)


class UnsafeWorker(Worker):
    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.policy = IgnoresRetryAfter(self.policy.base_seconds, self.policy.cap_seconds)


@pytest.fixture
def mocks(request: pytest.FixtureRequest) -> Mocks:
    mocks = mocks_for(request)
    mocks.set_faults("billing", retry_after_seconds=RETRY_AFTER)
    return mocks


def gaps_after_429(store: Store, mocks: Mocks, cls: type[Worker]) -> list[float]:
    """Sync the rate-limited customer; return the seconds between each 429'd attempt's end and
    the start of the next attempt."""
    job = store.enqueue(request(CUSTOMER, job_type="customer")).job
    settings = settings_for(mocks, job_backoff_seconds_base=BASE)
    run_workers([worker(store, real_registry(), settings, cls)], all_finished(store))
    assert mocks.requests("billing").get("429") == 2
    attempts = store.attempts_of(job.id)
    assert [(a.outcome, a.error_class) for a in attempts] == [
        ("error", "UpstreamRateLimited"),
        ("error", "UpstreamRateLimited"),
        ("succeeded", None),
    ]
    assert store.get_job(job.id).state is JobState.SUCCEEDED
    return [
        (later.started_at - earlier.finished_at).total_seconds()
        for earlier, later in pairwise(attempts)
        if earlier.finished_at is not None
    ]


def test_repro_ignoring_retry_after_calls_back_too_early(live_store: Store, mocks: Mocks) -> None:
    gaps = gaps_after_429(live_store, mocks, UnsafeWorker)
    # Billing said "wait 0.6 s"; a retry came back at once. (min: on a loaded machine one of
    # the two gaps can stretch to a few tenths of a second; the violation is any early one.)
    assert min(gaps) < RETRY_AFTER / 2


def test_prevented_next_attempt_waits_for_retry_after(live_store: Store, mocks: Mocks) -> None:
    gaps = gaps_after_429(live_store, mocks, Worker)
    assert min(gaps) >= RETRY_AFTER - 0.001  # timestamps are stored to the microsecond
    assert violations(live_store) == {}


def test_prevented_retry_after_wins_over_the_backoff_and_is_capped(
    store: Store, clock: FakeClock
) -> None:
    """Exactly, on the injected clock: not claimable a moment before Retry-After, claimable at
    it; an absurd Retry-After is capped at an hour. A 429 spends an attempt."""
    for retry_after, wait in ((30.0, 30.0), (7200.0, 3600.0)):
        job = store.enqueue(request(f"c_{int(retry_after)}", max_retries=3)).job
        [claimed] = store.claim("w", ["noop"], 1, lease_seconds=60)
        limited = ErrorSnapshot("UpstreamRateLimited", "429", True, 429, retry_after=retry_after)
        failed = Completion(job.id, claimed.attempt, "w", AttemptOutcome.ERROR, limited)
        [result] = store.complete([failed], RetryPolicy(base_seconds=2.0))
        assert result.state is JobState.PENDING
        assert store.get_job(job.id).next_run_at == clock.now() + timedelta(seconds=wait)
        assert store.get_job(job.id).charged_attempts == 1
        clock.advance(wait - 0.01)
        assert store.claim("w", ["noop"], 1, lease_seconds=60) == []
        clock.advance(0.01)
        [again] = store.claim("w", ["noop"], 1, lease_seconds=60)
        assert (again.id, again.attempt) == (job.id, 2)
        store.complete([Completion(job.id, 2, "w", AttemptOutcome.SUCCEEDED)])
    assert violations(store) == {}
