"""A believable hour of history for the browser test and the screenshots: jobs that succeeded,
retried, died and failed over the last hour, a few waiting, and one dead job whose entity id is
hostile HTML."""

from __future__ import annotations

from datetime import timedelta

from syncbridge.clock import FakeClock, SystemClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot, Job
from syncbridge.states import AttemptOutcome
from tests.api.support import HOSTILE

WORKERS = ("worker-a-4711", "worker-b-4712")
TIMEOUT = ErrorSnapshot("UpstreamTimeout", "CRM did not answer within 10 s", True)
LIMITED = ErrorSnapshot("UpstreamRateLimited", "billing answered 429", True, http_status=429)
DOWN = ErrorSnapshot("UpstreamUnavailable", "billing answered 503", True, http_status=503)
MISSING = ErrorSnapshot("NotFound", "CRM has no customer c_missing", False, http_status=404)
INVALID = ErrorSnapshot("ValidationError", "customer record has no email", False)


def _attempt(store: Store, job: Job, outcome: AttemptOutcome, error: ErrorSnapshot | None) -> None:
    clock = store.clock
    assert isinstance(clock, FakeClock)
    worker = WORKERS[job.id % 2]
    claimed = store.claim(worker, [job.job_type], 1, 60)
    assert [c.id for c in claimed] == [job.id]
    clock.advance(0.05 + ((job.id + claimed[0].attempt) % 7) * 0.11)
    store.complete([Completion(job.id, claimed[0].attempt, worker, outcome, error)])


def _job(store: Store, entity_id: str, max_retries: int, steps: list[ErrorSnapshot | None]) -> Job:
    early = store.clock.now() - timedelta(days=1)  # due before anything else
    job = store.enqueue(
        EnqueueRequest("noop", entity_id, {"source": "seed"}, max_retries, run_at=early)
    ).job
    for error in steps:
        if error is None:
            outcome = AttemptOutcome.SUCCEEDED
        else:
            outcome = AttemptOutcome.ERROR if error.retryable else AttemptOutcome.FAILED
        _attempt(store, store.get_job(job.id), outcome, error)
        assert isinstance(store.clock, FakeClock)
        store.clock.advance(15)  # past the backoff of these first retries
    return store.get_job(job.id)


def seed(database_url: str) -> Job:
    """Fill a migrated database; returns the hostile dead job."""
    clock = FakeClock(SystemClock().now() - timedelta(minutes=58))
    store = Store(make_engine(database_url), clock)
    try:
        for n in range(48):
            entity = f"c_{1000 + n}"
            if n % 11 == 5:
                _job(store, entity, 0, [DOWN])
            elif n % 13 == 7:
                _job(store, entity, 2, [MISSING])
            elif n % 4 == 1:
                _job(store, entity, 3, [LIMITED if n % 8 == 1 else TIMEOUT, None])
            else:
                _job(store, entity, 3, [None])
            clock.advance(20 + (n * 37) % 40)
        _job(store, "c_flaky", 2, [DOWN, LIMITED, TIMEOUT])
        _job(store, "c_invalid", 3, [INVALID])
        hostile = _job(store, HOSTILE, 1, [DOWN, DOWN])
        assert clock.now() < SystemClock().now(), "seeded history runs into the future"
        later = SystemClock().now() + timedelta(hours=1)
        for n in range(3):
            store.enqueue(EnqueueRequest("noop", f"c_{2000 + n}", {}, 3, run_at=later))
        return hostile
    finally:
        store.engine.dispose()
