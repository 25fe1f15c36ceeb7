"""FM_008: a hung handler (a call that never returns) keeps its job ``running`` forever.

Renewal proves the worker alive, not the handler: a worker that renews every lease it holds
keeps a hung attempt's lease fresh, so no rescuer ever sees it expire. Unsafe variant: a worker
without the execution timeout. Prevention: ``Worker._enforce_timeouts`` ends the attempt as
``timeout`` past the job type's timeout, asks the handler to stop, stops renewing its lease,
counts the thread as stuck, and the job retries (``transitions.decide``); a late result of the
hung thread is never written.

Real worker loop in a thread, system clock, tiny lease; the hung handler blocks on an event that
the test releases at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from syncbridge.db.queries import Store
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.models import RenewResult
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with

WAIT = 20.0
TIMEOUT = 0.3
SETTINGS = fast_settings(job_lease_seconds=0.15, rescue_interval_seconds=0.05)
# The repro needs the loop to keep one lease fresh for ten renewals: a 0.15 s lease left a
# loop stalled for that long on a loaded machine (the full suite on two cores) to its own
# rescuer, and the renewals stopped. 0.6 s: still ten renewals in about two seconds.
REPRO_SETTINGS = fast_settings(job_lease_seconds=0.6, rescue_interval_seconds=0.05)


class NoTimeoutWorker(Worker):
    """Unsafe: never enforces the execution timeout."""

    def _enforce_timeouts(self) -> None:
        pass


class CountingStore(Store):
    """The real store, counting the renewals that extended a lease."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.renewals = 0
        self.renewed = threading.Event()

    def renew(self, worker_id: str, held: Iterable[tuple[int, int]], lease: float) -> RenewResult:
        result = super().renew(worker_id, held, lease)
        if result.renewed:
            self.renewals += 1
            if self.renewals >= 10:  # >= 9 renewal periods: past the timeout, 3 leases long
                self.renewed.set()
        return result


@pytest.fixture
def hang() -> Iterator[threading.Event]:
    released = threading.Event()
    yield released
    released.set()  # let the hung pool thread end


def hung_type(hang: threading.Event, started: threading.Event) -> JobType:
    def stuck_call(ctx: JobContext) -> None:
        started.set()
        if ctx.attempt == 1:
            hang.wait(WAIT)  # a socket without a timeout: ignores stop requests too

    return JobType("stuck_call", stuck_call, timeout_seconds=TIMEOUT)


def test_repro_without_timeout_renewal_keeps_a_hung_job_running(
    live_store: Store, hang: threading.Event
) -> None:
    store = CountingStore(live_store.engine)
    started = threading.Event()
    job_id = store.enqueue(request("hung", job_type="stuck_call", max_retries=1)).job.id
    worker = NoTimeoutWorker(
        store, registry_with(hung_type(hang, started)), REPRO_SETTINGS, concurrency=2, worker_id="w"
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert started.wait(WAIT)
        since = time.monotonic()
        assert store.renewed.wait(WAIT)
        assert time.monotonic() - since > TIMEOUT
        job = store.get_job(job_id)
        assert job.state is JobState.RUNNING and job.attempt == 1
        assert [a.outcome for a in store.attempts_of(job_id)] == ["running"]
        assert store.rescue() == []  # the lease is always fresh: nothing to recover, ever
        assert worker.stats.timeouts == 0
        assert violations(store, lease_grace_seconds=0) == {}  # invisible to the checks
    finally:
        worker.request_stop()
        hang.set()
        thread.join(WAIT)


def test_prevented_timeout_ends_the_attempt_and_retries(
    live_store: Store, hang: threading.Event
) -> None:
    started = threading.Event()
    job_id = live_store.enqueue(request("hung", job_type="stuck_call", max_retries=1)).job.id
    worker = Worker(
        live_store,
        registry_with(hung_type(hang, started)),
        SETTINGS,
        concurrency=2,
        worker_id="w",
        burst=True,
    )
    worker.run()  # burst: returns once nothing is due, the hung thread still blocked
    assert worker.stats.timeouts == 1 and worker.stuck_threads == 1
    job = live_store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED and job.attempt == 2
    attempts = live_store.attempts_of(job_id)
    assert [a.outcome for a in attempts] == ["timeout", "succeeded"]
    assert attempts[0].error_class == "AttemptTimeout"
    assert violations(live_store) == {}
