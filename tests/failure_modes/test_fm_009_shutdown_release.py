"""FM_009: a worker told to stop (SIGTERM, a deploy) gives back the jobs it could not finish.

Unsafe variant: a release that closes those attempts like failures, charging the retry budget:
with ``max_retries=0`` one deploy sends a healthy job to ``dead``. Prevention: the ``released``
outcome is not charged (``transitions.decide``: ``charge=False``; ``LifecycleStore._record``
moves ``budget_start``; ``invariants`` INV_004 skips released attempts), and ``Worker.run`` lets
in-flight jobs finish within ``shutdown_grace_seconds`` first.

In-process: ``Worker.request_stop`` is what the SIGTERM handler calls. The real-process case is
``tests/integration/test_processes.py::test_sigterm_drains_and_releases_without_charging``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

import pytest

from syncbridge.db.queries import Store
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.models import Completion, CompletionResult, ErrorSnapshot
from syncbridge.states import AttemptOutcome, JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with

WAIT = 20.0
SETTINGS = fast_settings(shutdown_grace_seconds=0.2)


class ChargingReleaseStore(Store):
    """Unsafe: a release recorded as a retryable error, which spends an attempt."""

    def release(self, worker_id: str, held: Iterable[tuple[int, int]]) -> list[CompletionResult]:
        shutdown = ErrorSnapshot("WorkerShutdown", "worker stopped", retryable=True)
        return self.complete(
            [Completion(j, a, worker_id, AttemptOutcome.ERROR, shutdown) for j, a in held]
        )


@pytest.fixture
def unblock() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def stop_mid_run(store: Store, unblock: threading.Event) -> tuple[int, int, Worker]:
    """Two jobs run; the worker is told to stop. The quick one's call returns during the grace
    period; the long one's (an upstream call that ignores the stop) does not: it is released."""
    started = {"quick": threading.Event(), "long": threading.Event()}
    stopping = threading.Event()

    def sync(ctx: JobContext) -> None:
        started[ctx.entity_id].set()
        if ctx.attempt > 1:
            return
        if ctx.entity_id == "quick":
            assert stopping.wait(WAIT)
        else:
            unblock.wait(WAIT)

    quick = store.enqueue(request("quick", job_type="sync", max_retries=0)).job.id
    long = store.enqueue(request("long", job_type="sync", max_retries=0)).job.id
    worker = Worker(store, registry_with(JobType("sync", sync)), SETTINGS, concurrency=2)
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert started["quick"].wait(WAIT) and started["long"].wait(WAIT)
        worker.request_stop()  # what the SIGTERM handler does
        stopping.set()
    finally:
        thread.join(WAIT)
    assert not thread.is_alive()
    assert worker.stats.released == 1
    assert store.get_job(quick).state is JobState.SUCCEEDED  # drained within the grace period
    return quick, long, worker


def test_repro_charging_release_sends_a_healthy_job_dead(
    live_store: Store, unblock: threading.Event
) -> None:
    unsafe = ChargingReleaseStore(live_store.engine)
    _quick, long, _worker = stop_mid_run(unsafe, unblock)
    job = unsafe.get_job(long)
    assert job.state is JobState.DEAD  # one deploy, and a healthy job is in the DLQ
    assert [a.outcome for a in unsafe.attempts_of(long)] == ["error"]
    assert job.last_error is not None and job.last_error["class"] == "WorkerShutdown"


def test_prevented_released_job_is_not_charged(live_store: Store, unblock: threading.Event) -> None:
    _quick, long, _worker = stop_mid_run(live_store, unblock)
    job = live_store.get_job(long)
    assert job.state is JobState.PENDING and job.charged_attempts == 0
    assert job.lease_owner is None and job.attempt == 1
    assert [a.outcome for a in live_store.attempts_of(long)] == ["released"]
    assert violations(live_store) == {}

    # The next worker runs it with its whole budget (max_retries=0: one charged attempt).
    registry = registry_with(JobType("sync", lambda ctx: None))
    Worker(live_store, registry, SETTINGS, burst=True).run()
    job = live_store.get_job(long)
    assert job.state is JobState.SUCCEEDED and job.charged_attempts == 1
    assert [a.outcome for a in live_store.attempts_of(long)] == ["released", "succeeded"]
    assert violations(live_store) == {}


def test_prevented_release_of_a_cancel_requested_job_cancels_it(store: Store) -> None:
    job = store.enqueue(request("cancelled-then-deploy")).job
    [running] = store.claim("w1", ["noop"], 1, 60)
    store.cancel(job.id)  # the handler is asked to stop but outlasts the grace period
    [released] = store.release("w1", [(running.id, running.attempt)])
    assert released.applied and released.state is JobState.CANCELLED
    assert store.claim("w2", ["noop"], 1, 60) == []  # it must not run again
    assert violations(store) == {}
