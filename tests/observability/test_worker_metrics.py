"""A real Worker in-process, counted by WorkerMetrics: exact values, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.jobtypes import JobContext, JobType
from syncbridge.metrics import Metrics, WorkerMetrics, summary
from syncbridge.models import EnqueueRequest, Job
from syncbridge.retry import RetryPolicy
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.conftest import truncate
from tests.helpers import fast_settings, registry_with
from tests.observability.promtext import assert_bounded_labels


@pytest.fixture
def live_store(engine: Engine) -> Store:
    truncate(engine)
    return Store(engine)  # system clock: the database's own on PostgreSQL


def enqueue(store: Store, job_type: str, entity: str, **kw: Any) -> Job:
    values: dict[str, Any] = {"payload": {}, "max_retries": 3} | kw
    return store.enqueue(EnqueueRequest(job_type, entity, **values)).job


def run_burst(store: Store, metrics: Metrics, *job_types: JobType, **settings: Any) -> Worker:
    worker = Worker(
        store,
        registry_with(*job_types),
        fast_settings(**settings),
        concurrency=4,
        burst=True,
        on_event=WorkerMetrics(metrics).on_event,
    )
    worker.run()
    return worker


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_failed_twice_then_succeeded_is_two_retries_and_three_attempts(live_store: Store) -> None:
    metrics = Metrics()
    job = enqueue(
        live_store, "noop", "ent-flaky", payload={"fail": "retryable", "fail_attempts": 2}
    )
    run_burst(live_store, metrics)

    assert sample(metrics, "syncbridge_retries_total", error_class="UpstreamUnavailable") == 2
    assert sample(metrics, "syncbridge_attempts_total", job_type="noop", outcome="error") == 2
    assert sample(metrics, "syncbridge_attempts_total", job_type="noop", outcome="succeeded") == 1
    assert (
        sample(
            metrics, "syncbridge_attempt_duration_seconds_count", job_type="noop", outcome="error"
        )
        == 2
    )
    assert (
        sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="succeeded") == 1
    )
    assert sample(metrics, "syncbridge_jobs_in_flight") == 0
    assert sample(metrics, "syncbridge_worker_concurrency") == 4
    assert sample(metrics, "syncbridge_database_up") == 1
    assert sample(metrics, "syncbridge_lease_expirations_total") == 0
    assert sample(metrics, "syncbridge_database_outages_total") == 0

    # The database tells the same story, whichever process asks.
    doc = summary(live_store)
    assert (doc["attempts"], doc["retries"], doc["finished"]) == (3, 2, 1)
    assert doc["success_rate"] == 1.0 and doc["dlq_size"] == 0
    assert doc["by_job_type"]["noop"]["retries"] == 2
    assert doc["avg_attempt_duration_ms"] is not None and doc["avg_attempt_duration_ms"] >= 0
    assert_bounded_labels(metrics.registry.collect(), [job.id, job.entity_id])


def test_dead_and_failed_jobs_are_counted_by_final_state(live_store: Store) -> None:
    metrics = Metrics()
    dead = enqueue(live_store, "noop", "ent-down", payload={"fail": "retryable"}, max_retries=2)
    failed = enqueue(live_store, "noop", "ent-bad", payload={"fail": "terminal"})
    ok = enqueue(live_store, "noop", "ent-ok")
    metrics.bind_store(live_store)
    run_burst(live_store, metrics)

    assert sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="dead") == 1
    assert sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="failed") == 1
    assert (
        sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="succeeded") == 1
    )
    assert sample(metrics, "syncbridge_retries_total", error_class="UpstreamUnavailable") == 2
    assert sample(metrics, "syncbridge_attempts_total", job_type="noop", outcome="error") == 3
    assert sample(metrics, "syncbridge_attempts_total", job_type="noop", outcome="failed") == 1
    # scrape-time gauges from the database
    assert sample(metrics, "syncbridge_queue_depth", state="dead", job_type="noop") == 1
    assert sample(metrics, "syncbridge_queue_depth", state="failed", job_type="noop") == 1
    assert sample(metrics, "syncbridge_queue_depth", state="pending", job_type="noop") == 0
    assert sample(metrics, "syncbridge_database_scrape_up") == 1

    doc = summary(live_store)
    assert (doc["total"], doc["finished"], doc["dlq_size"], doc["retries"]) == (3, 3, 1, 2)
    assert doc["success_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert doc["attempts"] == 5
    ids = [j.id for j in (dead, failed, ok)] + [j.entity_id for j in (dead, failed, ok)]
    assert_bounded_labels(metrics.registry.collect(), ids)


def test_lost_lease_and_rescue_are_counted(engine: Engine) -> None:
    """Attempt 1 loses its lease while it runs (the clock jumps past it and a rescuer takes the
    job back): its completion is fenced out, the rescue sends it back to pending as a retry
    under ``LeaseExpired``, and attempt 2 succeeds."""
    truncate(engine)
    clock = FakeClock()
    store = Store(engine, clock)
    metrics = Metrics()
    rescued_by_test = threading.Event()

    def outlives_lease(ctx: JobContext) -> None:
        if ctx.attempt != 1:
            return
        # The worker may renew this very lease meanwhile (from the advanced clock, or holding
        # the row, which a rescue skips): jump again until this rescue or the worker's own has
        # taken the job back.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            clock.advance(600)
            if store.rescue(RetryPolicy(0.0, 1.0)):
                rescued_by_test.set()
                return
            now = store.get_job(ctx.job_id)
            if now.attempt != 1 or now.state is not JobState.RUNNING:
                return
            threading.Event().wait(0.01)

    job = enqueue(store, "outlives", "ent-lease", max_retries=3)
    run_burst(store, metrics, JobType("outlives", outlives_lease))

    assert sample(metrics, "syncbridge_leases_lost_total", job_type="outlives") == 1
    assert (
        sample(metrics, "syncbridge_attempts_total", job_type="outlives", outcome="succeeded") == 2
    )
    assert (
        sample(metrics, "syncbridge_jobs_finished_total", job_type="outlives", state="succeeded")
        == 1
    )
    # Either the handler's rescue or the worker's own got there first; only the worker's counts.
    expected = 0 if rescued_by_test.is_set() else 1
    assert sample(metrics, "syncbridge_lease_expirations_total") == expected
    assert sample(metrics, "syncbridge_jobs_recovered_total", state="pending") == expected
    assert sample(metrics, "syncbridge_retries_total", error_class="LeaseExpired") == expected
    assert [a.outcome for a in store.attempts_of(job.id)] == ["lease_expired", "succeeded"]
    assert summary(store)["retries"] == 1


def test_worker_rescue_counts_expired_leases_by_destination(engine: Engine) -> None:
    truncate(engine)
    clock = FakeClock()
    store = Store(engine, clock)
    metrics = Metrics()
    retried = enqueue(store, "noop", "ent-r1", max_retries=3)
    doomed = enqueue(store, "noop", "ent-r2", max_retries=0)
    claimed = store.claim("ghost", ["noop"], 10, lease_seconds=5)
    assert {j.id for j in claimed} == {retried.id, doomed.id}
    clock.advance(60)  # the ghost never renews
    run_burst(store, metrics)

    assert sample(metrics, "syncbridge_lease_expirations_total") == 2
    assert sample(metrics, "syncbridge_jobs_recovered_total", state="pending") == 1
    assert sample(metrics, "syncbridge_jobs_recovered_total", state="dead") == 1
    assert sample(metrics, "syncbridge_retries_total", error_class="LeaseExpired") == 1
    assert (
        sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="succeeded") == 1
    )
    # The job that died with its lease finished too, and counts by its type like any other.
    assert sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="dead") == 1
    doc = summary(store)
    assert (doc["retries"], doc["dlq_size"], doc["succeeded"]) == (1, 1, 1)


def test_a_database_outage_counts_once(engine: Engine, database_url: str) -> None:
    """Every statement fails for a while (many polls): one outage, one reconnection."""
    truncate(engine)
    own_engine = make_engine(database_url)
    down_until = time.monotonic() + 0.5

    @event.listens_for(own_engine, "before_cursor_execute")
    def unreachable(*_args: Any) -> None:
        if time.monotonic() < down_until:
            raise OperationalError("statement", {}, ConnectionError("database unreachable"))

    try:
        store = Store(own_engine)
        metrics = Metrics()
        enqueue(Store(engine), "noop", "ent-db")
        run_burst(store, metrics)
    finally:
        own_engine.dispose()
    assert sample(metrics, "syncbridge_database_outages_total") == 1
    assert sample(metrics, "syncbridge_database_outage_seconds_total") >= 0.3
    assert sample(metrics, "syncbridge_database_up") == 1
    assert (
        sample(metrics, "syncbridge_jobs_finished_total", job_type="noop", state="succeeded") == 1
    )
