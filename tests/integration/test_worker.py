"""The worker loop in-process, on SQLite and PostgreSQL (PostgreSQL uses its own clock here)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, update

from syncbridge.db.queries import Store
from syncbridge.db.schema import workers
from syncbridge.errors import UpstreamRateLimited, UpstreamUnavailable, ValidationError
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success
from syncbridge.models import EnqueueRequest
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.conftest import truncate
from tests.helpers import fast_settings, registry_with
from tests.processes import wait_for


@pytest.fixture
def live_store(engine: Engine) -> Store:
    truncate(engine)
    return Store(engine)  # system clock: the database's own on PostgreSQL


def enqueue(store: Store, job_type: str, entity: str, **kw: Any) -> int:
    values: dict[str, Any] = {"payload": {}, "max_retries": 3} | kw
    return store.enqueue(EnqueueRequest(job_type, entity, **values)).job.id


def run_burst(store: Store, *job_types: JobType, concurrency: int = 4, **settings: Any) -> Worker:
    worker = Worker(
        store,
        registry_with(*job_types),
        fast_settings(**settings),
        concurrency=concurrency,
        burst=True,
    )
    worker.run()
    return worker


def _hangs(ctx: JobContext) -> None:
    """A handler that waits for its stop (a timeout, here): an attempt of unknown outcome."""
    ctx.wait_for_stop(10)


def run_until(worker: Worker, done: Callable[[], bool], what: str) -> None:
    """Run ``worker`` on a thread until ``done``, then stop it."""
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        wait_for(done, 20, what)
    finally:
        worker.request_stop()
        thread.join(20)


def test_burst_drains_noop_jobs(live_store: Store) -> None:
    ids = [enqueue(live_store, "noop", f"e{n}") for n in range(40)]
    worker = run_burst(live_store, concurrency=8)
    assert worker.stats.outcomes == {"succeeded": 40}
    for job_id in ids:
        job = live_store.get_job(job_id)
        assert job.state is JobState.SUCCEEDED and job.attempt == 1
        assert [a.outcome for a in live_store.attempts_of(job_id)] == ["succeeded"]


def test_retryable_error_then_success(live_store: Store) -> None:
    job_id = enqueue(live_store, "noop", "flaky", payload={"fail": "retryable", "fail_attempts": 2})
    run_burst(live_store)
    job = live_store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert [a.outcome for a in live_store.attempts_of(job_id)] == ["error", "error", "succeeded"]


def test_exhausted_retries_go_dead_and_terminal_fails(live_store: Store) -> None:
    dead = enqueue(live_store, "noop", "down", payload={"fail": "retryable"}, max_retries=2)
    failed = enqueue(live_store, "noop", "bad", payload={"fail": "terminal"})
    run_burst(live_store)
    assert live_store.get_job(dead).state is JobState.DEAD
    assert len(live_store.attempts_of(dead)) == 3
    assert live_store.get_job(failed).state is JobState.FAILED
    assert len(live_store.attempts_of(failed)) == 1
    error = live_store.get_job(failed).last_error
    assert error is not None and error["class"] == "ValidationError" and not error["retryable"]
    assert error.get("traceback_tail")


def test_unclassified_exception_is_retryable_under_its_class(live_store: Store) -> None:
    def broken(ctx: JobContext) -> None:
        raise KeyError("boom")

    job_id = enqueue(live_store, "broken", "x", max_retries=1)
    run_burst(live_store, JobType("broken", broken))
    job = live_store.get_job(job_id)
    assert job.state is JobState.DEAD
    assert [a.error_class for a in live_store.attempts_of(job_id)] == ["KeyError", "KeyError"]


def test_rate_limit_waits_retry_after(live_store: Store) -> None:
    calls: list[int] = []

    def limited(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        if ctx.attempt == 1:
            raise UpstreamRateLimited("slow down", retry_after=30)

    job_id = enqueue(live_store, "limited", "x")
    run_burst(live_store, JobType("limited", limited))
    job = live_store.get_job(job_id)
    # burst leaves a job that waits for a later retry pending
    assert job.state is JobState.PENDING and calls == [1]
    [attempt] = live_store.attempts_of(job_id)
    assert (job.next_run_at - attempt.finished_at).total_seconds() >= 29  # type: ignore[operator]


def test_timeout_ends_attempt_and_retries(live_store: Store) -> None:
    seen: list[str | None] = []
    stopped = threading.Event()

    def hangs(ctx: JobContext) -> None:
        ctx.wait_for_stop(10)
        seen.append(ctx.stop_reason)
        stopped.set()

    job_id = enqueue(live_store, "hangs", "x", max_retries=0)
    worker = run_burst(live_store, JobType("hangs", hangs, timeout_seconds=0.2))
    job = live_store.get_job(job_id)
    assert job.state is JobState.DEAD
    assert [a.outcome for a in live_store.attempts_of(job_id)] == ["timeout"]
    assert worker.stats.timeouts == 1
    # The handler thread hears the stop request on its own schedule: the burst worker may
    # have recorded the timeout and exited before the thread ran again.
    assert stopped.wait(10)
    assert seen == ["timeout"]


def test_cancel_running_job_reaches_handler(live_store: Store) -> None:
    started = threading.Event()
    seen: list[str | None] = []

    def waits(ctx: JobContext) -> None:
        started.set()
        ctx.wait_for_stop(10)
        seen.append(ctx.stop_reason)
        raise ValidationError("stopped")

    job_id = enqueue(live_store, "waits", "x")
    worker = Worker(
        live_store,
        registry_with(JobType("waits", waits)),
        fast_settings(job_lease_seconds=0.3),
        concurrency=1,
        burst=True,
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(10)
    live_store.cancel(job_id)
    thread.join(15)
    assert not thread.is_alive()
    assert seen == ["cancel requested"]
    assert live_store.get_job(job_id).state is JobState.CANCELLED
    assert [a.outcome for a in live_store.attempts_of(job_id)] == ["cancelled"]


def test_stop_drains_in_flight_and_releases_the_rest(live_store: Store) -> None:
    release_handler = threading.Event()
    started = threading.Event()

    def stubborn(ctx: JobContext) -> None:
        started.set()
        release_handler.wait(10)  # ignores stop requests on purpose

    job_id = enqueue(live_store, "stubborn", "x", max_retries=0)
    worker = Worker(
        live_store,
        registry_with(JobType("stubborn", stubborn)),
        fast_settings(shutdown_grace_seconds=0.2),
        concurrency=1,
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert started.wait(10)
        worker.request_stop()
        thread.join(10)
        assert not thread.is_alive()
    finally:
        release_handler.set()
    job = live_store.get_job(job_id)
    assert job.state is JobState.PENDING and job.charged_attempts == 0
    assert [a.outcome for a in live_store.attempts_of(job_id)] == ["released"]


def test_effect_is_written_with_success(live_store: Store) -> None:
    def effectful(ctx: JobContext) -> Success:
        return Success(AppliedEffect(ctx.effect_key("create", {"n": 1}), "billing", "ref-1"))

    job_id = enqueue(live_store, "effectful", "x")
    run_burst(live_store, JobType("effectful", effectful))
    [row] = live_store.ledger_rows()
    assert row["job_id"] == job_id and row["upstream_ref"] == "ref-1"
    assert row["effect_key"].startswith(f"sb-{job_id}-")


def test_every_attempt_log_line_carries_job_context(live_store: Store) -> None:
    def logs(ctx: JobContext) -> None:
        structlog.get_logger().info("inside_handler")

    job_id = enqueue(live_store, "logs", "x", correlation_id="corr-123")
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as captured:
        run_burst(live_store, JobType("logs", logs))
    inside = [line for line in captured if line["event"] == "inside_handler"]
    finished = [line for line in captured if line["event"] == "attempt_finished"]
    for line in inside + finished:
        assert line["correlation_id"] == "corr-123" and line["job_id"] == job_id
        assert line["entity_id"] == "x" and line["attempt"] == 1
    assert inside and finished and finished[0]["outcome"] == "succeeded"


def test_worker_reconciles_unknown_outcomes_periodically(live_store: Store) -> None:
    asked: list[int] = []

    def reconciler(ctx: JobContext) -> AppliedEffect | None:
        asked.append(ctx.job_id)
        return AppliedEffect(f"found-{ctx.entity_id}", "billing", "inv_7")

    kind = JobType("hangs", _hangs, timeout_seconds=0.2, reconcile=reconciler)
    job_id = enqueue(live_store, "hangs", "x", max_retries=0)
    worker = Worker(
        live_store,
        registry_with(kind),
        fast_settings(reconcile_interval_seconds=0.2),
        concurrency=1,
    )
    run_until(
        worker,
        lambda: live_store.get_job(job_id).effect_status == "applied",
        "the worker's reconcile to record the effect",
    )
    job = live_store.get_job(job_id)
    assert job.state is JobState.DEAD  # history is not rewritten
    assert asked == [job_id]
    assert [(r["job_id"], r["upstream_ref"]) for r in live_store.ledger_rows()] == [
        (job_id, "inv_7")
    ]


def _hangs_down_or_found(asked: list[str]) -> Any:
    """Jobs of type ``hangs`` time out (an unknown outcome); their upstream cannot answer for
    entities named ``down-…`` and found the effect of every other. Each ask goes in ``asked``."""

    def reconciler(ctx: JobContext) -> AppliedEffect | None:
        asked.append(ctx.entity_id)
        if ctx.entity_id.startswith("down"):
            raise UpstreamUnavailable("billing -> 503")
        return AppliedEffect(f"found-{ctx.entity_id}", "billing", "inv_8")

    return registry_with(JobType("hangs", _hangs, timeout_seconds=0.2, reconcile=reconciler))


def test_worker_reconcile_rounds_page_past_jobs_the_upstream_cannot_answer_for(
    live_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rounds of RECONCILE_BATCH jobs go on after the last round's last job, so jobs whose
    upstream keeps failing (a customer that is always down) do not take every round."""
    monkeypatch.setattr("syncbridge.worker.RECONCILE_BATCH", 2)
    asked: list[str] = []
    ids = [enqueue(live_store, "hangs", e, max_retries=0) for e in ("down-1", "down-2", "ok")]
    worker = Worker(
        live_store,
        _hangs_down_or_found(asked),
        fast_settings(reconcile_interval_seconds=0.1),
        concurrency=3,
    )
    run_until(
        worker,
        lambda: live_store.get_job(ids[2]).effect_status == "applied",
        "the job after the two that cannot be answered to be reconciled",
    )
    assert {live_store.get_job(i).effect_status for i in ids[:2]} == {None}
    assert "ok" in asked and asked.index("ok") > asked.index("down-2")


def test_a_stopping_worker_finishes_the_reconcile_ask_under_way(live_store: Store) -> None:
    """Stopped while its reconcile round waits for an upstream's answer, the worker records
    that answer before it returns (within the grace period), instead of dropping it."""
    asking = threading.Event()

    def slow_reconciler(ctx: JobContext) -> AppliedEffect | None:
        asking.set()
        time.sleep(0.5)  # the upstream's answer on its way
        return AppliedEffect(f"found-{ctx.entity_id}", "billing", "inv_10")

    kind = JobType("hangs", _hangs, timeout_seconds=0.2, reconcile=slow_reconciler)
    job_id = enqueue(live_store, "hangs", "slow-answer", max_retries=0)
    worker = Worker(
        live_store,
        registry_with(kind),
        fast_settings(reconcile_interval_seconds=0.1),
        concurrency=1,
    )
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert asking.wait(20), "the worker's reconcile round to ask"
    finally:
        worker.request_stop()
        thread.join(20)
    assert not thread.is_alive()
    assert live_store.get_job(job_id).effect_status == "applied"  # recorded before run returned
    assert live_store.next_ask(job_id) is None


def test_a_restarted_worker_does_not_ask_again_before_the_next_ask_is_due(
    live_store: Store,
) -> None:
    """The next ask about a job its upstream could not answer for is in the database: a worker
    started after another asked about it waits for it (30 s at least), instead of beginning its
    rounds with it again."""
    asked: list[str] = []
    registry = _hangs_down_or_found(asked)
    down = [enqueue(live_store, "hangs", f"down-{n}", max_retries=0) for n in range(2)]

    def started() -> Worker:
        return Worker(
            live_store, registry, fast_settings(reconcile_interval_seconds=0.1), concurrency=2
        )

    run_until(started(), lambda: len(asked) >= 2, "the first worker to ask about both jobs")
    assert sorted(asked) == ["down-0", "down-1"]
    ok = enqueue(live_store, "hangs", "ok", max_retries=0)
    run_until(
        started(),
        lambda: live_store.get_job(ok).effect_status == "applied",
        "the restarted worker to reconcile the job that can be answered",
    )
    assert sorted(asked) == ["down-0", "down-1", "ok"]  # none asked about twice
    for job_id in down:
        next_ask = live_store.next_ask(job_id)
        assert next_ask is not None and next_ask.asks == 1


def test_a_killed_workers_reconcile_hold_is_given_back_at_once(live_store: Store) -> None:
    """A worker killed mid-round leaves the jobs it took held for five minutes. The others'
    rescuers see that its heartbeat stopped and give the holds back: the live worker asks
    within a rescue interval, not after the hold (the test waits 20 s, the hold is 300 s)."""
    asked: list[str] = []
    registry = _hangs_down_or_found(asked)
    found = [enqueue(live_store, "hangs", f"found-{n}", max_retries=0) for n in range(2)]
    run_burst(live_store, registry.job_types["hangs"])  # both time out: dead, effect unknown
    assert {live_store.get_job(job_id).state for job_id in found} == {JobState.DEAD}
    live_store.register_worker("killed", "host", 1, ["hangs"])
    held = live_store.take_due(["hangs"], 10, held_by="killed")
    assert sorted(job.id for job in held) == found
    with live_store.engine.begin() as conn:  # its last beat, long ago
        conn.execute(
            update(workers)
            .where(workers.c.id == "killed")
            .values(alive_until=datetime.now(UTC) - timedelta(hours=1))
        )
    worker = Worker(
        live_store,
        registry,
        fast_settings(reconcile_interval_seconds=0.1, rescue_interval_seconds=0.1),
        concurrency=2,
    )
    events: list[tuple[str, dict[str, Any]]] = []
    worker.on_event = lambda event, fields: events.append((event, fields))
    run_until(
        worker,
        lambda: all(live_store.get_job(job_id).effect_status == "applied" for job_id in found),
        "the live worker to reconcile the jobs the killed one held",
    )
    assert sorted(asked) == ["found-0", "found-1"]
    assert ("reconcile_holds_released", {"count": 2}) in events


@pytest.mark.parametrize("worker_id", ["", "w" * 201, "w\x00", "w\n1"])
def test_a_worker_id_no_row_can_store_is_refused_at_once(live_store: Store, worker_id: str) -> None:
    """Every lease and attempt row stores the worker id: one too long (or holding a NUL,
    which PostgreSQL refuses) used to fail registration silently and then every claim."""
    with pytest.raises(ValueError, match="worker id"):
        Worker(live_store, registry_with(), fast_settings(), worker_id=worker_id)
    assert live_store.live_workers() == []
