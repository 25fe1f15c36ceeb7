"""Scrape-time gauges and the JSON summary, read from the database with an exact clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncbridge.clock import FakeClock
from syncbridge.db.engine import make_engine
from syncbridge.db.queries import Store
from syncbridge.metrics import DatabaseCollector, Metrics, render_prometheus, summary
from syncbridge.models import Completion, EnqueueRequest, ErrorSnapshot, Job
from syncbridge.retry import RetryPolicy
from syncbridge.states import AttemptOutcome
from tests.observability.promtext import assert_bounded_labels, parse, value

BROKEN = ErrorSnapshot("UpstreamUnavailable", "503", retryable=True)
NO_BACKOFF = RetryPolicy(0.0, 1.0)


def enqueue(store: Store, job_type: str, entity: str, max_retries: int = 3, **kw: object) -> Job:
    return store.enqueue(EnqueueRequest(job_type, entity, {}, max_retries, **kw)).job  # type: ignore[arg-type]


def run_once(
    store: Store, clock: FakeClock, job: Job, outcome: AttemptOutcome, seconds: float
) -> None:
    [claimed] = store.claim("w1", [job.job_type], 1, 60)
    assert claimed.id == job.id
    clock.advance(seconds)
    error = BROKEN if outcome is AttemptOutcome.ERROR else None
    store.complete([Completion(claimed.id, claimed.attempt, "w1", outcome, error)], NO_BACKOFF)


def test_queue_gauges_are_exact(store: Store, clock: FakeClock) -> None:
    first = enqueue(store, "noop", "ent-first")
    enqueue(store, "noop", "ent-later", run_at=clock.now() + timedelta(hours=1))
    clock.advance(10)
    enqueue(store, "sync", "ent-sync")
    clock.advance(20)
    enqueue(store, "noop", "ent-second")
    [claimed] = store.claim("w1", ["noop"], 1, 60)
    assert claimed.id == first.id  # oldest due first
    run_once(
        store, clock, enqueue(store, "dying", "ent-dead", max_retries=0), AttemptOutcome.ERROR, 0
    )
    clock.advance(5)

    metrics = Metrics()
    metrics.bind_store(store, job_types=["noop", "sync", "idle"])
    families = parse(metrics.render().decode())

    def gauge(name: str, **labels: str) -> float | None:
        return value(families, name, **labels)

    assert gauge("syncbridge_queue_depth", state="running", job_type="noop") == 1
    assert gauge("syncbridge_queue_depth", state="pending", job_type="noop") == 2
    assert gauge("syncbridge_jobs_runnable", job_type="noop") == 1  # ent-later is not due
    assert gauge("syncbridge_oldest_runnable_job_age_seconds", job_type="noop") == 5
    assert gauge("syncbridge_queue_depth", state="pending", job_type="sync") == 1
    assert gauge("syncbridge_oldest_runnable_job_age_seconds", job_type="sync") == 25
    assert gauge("syncbridge_queue_depth", state="dead", job_type="dying") == 1
    assert gauge("syncbridge_queue_depth", state="dead", job_type="noop") == 0
    # a registered type with no jobs still has its series (at zero), so dashboards draw it
    assert gauge("syncbridge_queue_depth", state="pending", job_type="idle") == 0
    assert gauge("syncbridge_oldest_runnable_job_age_seconds", job_type="idle") == 0
    assert gauge("syncbridge_database_scrape_up") == 1
    assert_bounded_labels(families, ["ent-first", "ent-later", "ent-sync", "ent-second"])


def test_worker_gauges(store: Store, clock: FakeClock) -> None:
    store.register_worker("w-live", "host", 1, ["noop"])
    store.register_worker("w-killed", "host", 2, ["noop"])
    store.register_worker("w-stopped", "host", 3, ["noop"])
    store.stop_worker("w-stopped")
    clock.advance(500)
    store.renew("w-live", [], 60)
    clock.advance(7)
    families = list(DatabaseCollector(store, stale_after_seconds=180).collect())
    assert value(families, "syncbridge_workers_live") == 1
    assert value(families, "syncbridge_workers_stale") == 1
    assert value(families, "syncbridge_worker_last_heartbeat_age_seconds") == 7
    assert summary(store, stale_after_seconds=180)["workers_live"] == 1


def test_no_workers_means_no_heartbeat_age(store: Store) -> None:
    families = list(DatabaseCollector(store).collect())
    assert value(families, "syncbridge_workers_live") == 0
    assert value(families, "syncbridge_worker_last_heartbeat_age_seconds") is None


def test_summary_from_the_database(store: Store, clock: FakeClock) -> None:
    flaky = enqueue(store, "noop", "ent-flaky")
    for outcome in (AttemptOutcome.ERROR, AttemptOutcome.ERROR, AttemptOutcome.SUCCEEDED):
        run_once(store, clock, flaky, outcome, 2)
    dead = enqueue(store, "noop", "ent-dead", max_retries=1)
    run_once(store, clock, dead, AttemptOutcome.ERROR, 4)
    run_once(store, clock, dead, AttemptOutcome.ERROR, 4)
    failed = enqueue(store, "sync", "ent-failed")
    run_once(store, clock, failed, AttemptOutcome.FAILED, 6)
    waiting = enqueue(store, "sync", "ent-waiting")
    run_once(store, clock, waiting, AttemptOutcome.ERROR, 6)  # back to pending: a retry
    cancelled = enqueue(store, "sync", "ent-cancelled")
    store.cancel(cancelled.id)

    doc = summary(store)
    assert doc["total"] == 5
    assert doc["finished"] == 4  # succeeded, dead, failed, cancelled
    assert (doc["succeeded"], doc["failed"], doc["dead"], doc["cancelled"]) == (1, 1, 1, 1)
    assert doc["success_rate"] == pytest.approx(1 / 3, abs=1e-4)  # cancelled is not judged
    assert doc["attempts"] == 7
    assert doc["retries"] == 4  # flaky 2, dead 1 (its last error ended it), waiting 1
    # (2 + 2 + 2 + 4 + 4 + 6 + 6) / 7 seconds
    assert doc["avg_attempt_duration_ms"] == pytest.approx(26_000 / 7, abs=1)
    assert doc["queue_depth"] == {
        "pending": 1,
        "running": 0,
        "succeeded": 1,
        "failed": 1,
        "dead": 1,
        "cancelled": 1,
    }
    assert doc["dlq_size"] == 1
    assert doc["by_job_type"]["noop"]["retries"] == 3
    assert doc["by_job_type"]["sync"]["success_rate"] == 0.0
    assert doc["generated_at"].endswith("+00:00")


def test_empty_database_summary(store: Store) -> None:
    doc = summary(store)
    assert doc["total"] == 0 and doc["success_rate"] is None
    assert doc["avg_attempt_duration_ms"] is None and doc["retries"] == 0


def test_render_prometheus_for_the_api(store: Store) -> None:
    enqueue(store, "noop", "ent-api")
    body, content_type = render_prometheus(store)
    assert content_type.startswith("text/plain; version=0.0.4")
    families = parse(body.decode())
    assert value(families, "syncbridge_queue_depth", state="pending", job_type="noop") == 1
    assert value(families, "process_start_time_seconds") is not None  # process collectors
    assert not [f for f in families if f.name.endswith("_created")]


def test_unreachable_database_still_scrapes(tmp_path_factory: pytest.TempPathFactory) -> None:
    missing = tmp_path_factory.mktemp("gone") / "no" / "such" / "dir" / "x.db"
    store = Store(make_engine(f"sqlite:///{missing}"))
    metrics = Metrics()
    metrics.bind_store(store)
    metrics.observe_enqueue("noop", deduplicated=False)
    families = parse(metrics.render().decode())
    assert value(families, "syncbridge_database_scrape_up") == 0
    assert (
        value(families, "syncbridge_jobs_enqueued_total", job_type="noop", deduplicated="false")
        == 1
    )


def test_unanswered_effect_gauges(store: Store, clock: FakeClock) -> None:
    """Jobs whose effect reconcile could not settle, by type, and how long the oldest has been
    waiting since it ended; a worker's first ask under way (0 asks) is not counted yet."""
    asked = [enqueue(store, "sync", f"ent-{n}", max_retries=0) for n in range(3)]
    for job in asked:
        run_once(store, clock, job, AttemptOutcome.ERROR, 0)
        clock.advance(10)
    assert store.ask_again_later(asked[0].id, "503", lambda n: 60.0) is not None
    assert store.ask_again_later(asked[1].id, "503", lambda n: 60.0) is not None
    [held] = store.take_due(["sync"], 10, after_id=asked[1].id)
    assert held.id == asked[2].id
    clock.advance(5)
    metrics = Metrics()
    metrics.bind_store(store, job_types=["sync", "noop"])
    families = parse(metrics.render().decode())
    assert value(families, "syncbridge_effects_unanswered", job_type="sync") == 2
    # asked[0] ended first, 35 s ago (three runs 10 s apart, then 5 s)
    assert value(families, "syncbridge_oldest_unanswered_effect_age_seconds", job_type="sync") == 35
    assert value(families, "syncbridge_effects_unanswered", job_type="noop") == 0
    assert value(families, "syncbridge_oldest_unanswered_effect_age_seconds", job_type="noop") == 0
    store.record_effect_status(store.get_job(asked[0].id), "not_applied", None)
    families = parse(metrics.render().decode())
    assert value(families, "syncbridge_effects_unanswered", job_type="sync") == 1
    assert value(families, "syncbridge_oldest_unanswered_effect_age_seconds", job_type="sync") == 25
