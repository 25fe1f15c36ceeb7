"""FM_013: the database goes away under a running worker (restart, failover, network blip).

Unsafe variant: a worker that lets a database error escape its loop dies with it: the outcome
it had in hand is never written and its jobs sit `running` until someone rescues them. The real
worker keeps the outcome in memory, logs `database_lost` once, and writes it (fenced) when the
database answers again. The real-process drill with a restarted PostgreSQL cluster is
tests/integration/test_database_restart.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import structlog
from sqlalchemy.exc import OperationalError

from syncbridge.db.queries import Store
from syncbridge.models import Completion, CompletionResult
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with


def _gone(statement: str) -> OperationalError:
    return OperationalError(statement, {}, Exception("server closed the connection"))


class FlakyStore(Store):
    """The real store, except that the database goes away at the next completion flush and
    stays away for ``outages`` flushes. Meanwhile the worker's other store calls (claim,
    renewals, the rescuer's probes) fail too, as they would in a real outage: a renewal that
    got through would rightly be logged as the database coming back."""

    outages = 0
    down = False

    def complete(self, completions: Sequence[Completion], *args: Any) -> list[CompletionResult]:
        if self.outages > 0:
            self.outages -= 1
            self.down = self.outages > 0
            raise _gone("UPDATE jobs")
        return super().complete(completions, *args)


def _fails_while_down(name: str) -> Callable[..., Any]:
    def call(self: FlakyStore, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise _gone(name)
        return getattr(Store, name)(self, *args, **kwargs)

    return call


for _name in (
    "claim",
    "claim_to_run",
    "renew",
    "rescue",
    "isolated_pending",
    "isolated_due",
    "has_runnable",
):
    setattr(FlakyStore, _name, _fails_while_down(_name))


class UnsafeWorker(Worker):
    """No outage handling: a database error ends the loop."""

    def _db(self, operation: Callable[[], Any]) -> Any:
        return operation()


def _flaky(live_store: Store, outages: int) -> FlakyStore:
    store = FlakyStore(live_store.engine)
    store.outages = outages
    return store


def test_repro_worker_without_outage_handling_dies_and_strands_its_job(
    live_store: Store,
) -> None:
    store = _flaky(live_store, outages=1)
    job = store.enqueue(request("e1")).job
    worker = UnsafeWorker(store, registry_with(), fast_settings(), concurrency=1, burst=True)
    with pytest.raises(OperationalError):
        worker.run()
    stranded = store.get_job(job.id)
    assert stranded.state is JobState.RUNNING  # the success it computed is gone
    assert [a.outcome for a in store.attempts_of(job.id)] == ["running"]


def test_prevented_worker_keeps_outcomes_and_writes_them_when_the_database_returns(
    live_store: Store,
) -> None:
    store = _flaky(live_store, outages=3)
    ids = [store.enqueue(request(f"e{n}")).job.id for n in range(5)]
    worker = Worker(store, registry_with(), fast_settings(), concurrency=2, burst=True)
    with structlog.testing.capture_logs() as logs:
        worker.run()
    assert all(store.get_job(i).state is JobState.SUCCEEDED for i in ids)
    assert all([a.outcome for a in store.attempts_of(i)] == ["succeeded"] for i in ids)
    events = [line["event"] for line in logs]
    assert events.count("database_lost") == 1  # logged once, not once per retry
    assert events.count("database_reconnected") == 1
    assert violations(store) == {}


def test_an_answer_to_a_call_sent_before_the_loss_does_not_end_the_outage(
    live_store: Store,
) -> None:
    """The loop's claim is on its way when the writer's flush finds the database gone; the
    claim's late answer says nothing about now, so the outage is logged once and ends with the
    first call sent after it."""
    worker = Worker(live_store, registry_with(), fast_settings(), concurrency=1)

    def flush_fails() -> None:
        raise _gone("UPDATE jobs")

    def claim_answered_after_the_flush_failed() -> str:
        assert worker._db(flush_fails) is None  # the other thread, meanwhile
        return "claimed"

    with structlog.testing.capture_logs() as logs:
        assert worker._db(claim_answered_after_the_flush_failed) == "claimed"
        assert worker._db_down_since is not None  # still down: claiming stays paused
        assert worker._db(lambda: "renewed") == "renewed"  # sent after the loss: it is back
        assert worker._db(lambda: "claimed") == "claimed"
    events = [line["event"] for line in logs]
    assert events == ["database_lost", "database_reconnected"]


def test_outage_events_come_out_in_the_order_of_the_transitions(live_store: Store) -> None:
    """The writer's flush fails while the loop's renewals succeed, over and over, on two
    threads: the events (and the ``database_up`` gauge fed by them) must alternate, lost first.
    Emitted after the transition's lock was released, a thread switch between the two could
    put a ``database_lost`` after the ``database_reconnected`` of a later transition; a slow
    log line (a full pipe, a slow disk) makes that window wide."""
    events: list[str] = []

    def slow_line(_logger: Any, _method: str, event: Any) -> Any:
        if event.get("event") == "database_lost":  # its line is the slow one
            time.sleep(0.002)
        raise structlog.DropEvent

    def flush_fails() -> None:
        raise _gone("UPDATE jobs")

    saved = structlog.get_config()
    structlog.configure(processors=[slow_line])
    try:
        worker = Worker(
            live_store,
            registry_with(),
            fast_settings(),
            on_event=lambda event, _fields: events.append(event),
        )

        def hammer(operation: Callable[[], Any]) -> None:
            for _ in range(300):
                worker._db(operation)

        threads = [
            threading.Thread(target=hammer, args=(flush_fails,)),
            threading.Thread(target=hammer, args=(lambda: None,)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        structlog.configure(**saved)
    outage = [e for e in events if e in ("database_lost", "database_reconnected")]
    assert outage, "the two threads never crossed"
    expected = ["database_lost", "database_reconnected"] * len(outage)
    assert outage == expected[: len(outage)]


def _stop_mid_outage(
    live_store: Store, grace: float, back_when_stopping: bool
) -> tuple[FlakyStore, list[int], int, list[dict[str, Any]]]:
    """Three fast jobs and a slow one claimed; the database goes away at the first flush;
    the worker is stopped once the fast ones finished (optionally the database comes back
    as the stop begins). Returns the store, the fast ids, the slow id and the log lines."""
    store = _flaky(live_store, outages=10**6)  # down from the first flush, for good
    fast = [store.enqueue(request(f"fast-{n}")).job.id for n in range(3)]
    slow = store.enqueue(request("slow", payload={"sleep": 30})).job.id
    settings = fast_settings(shutdown_grace_seconds=grace)
    worker = Worker(store, registry_with(), settings, concurrency=4)
    deadline = time.monotonic() + 10

    def wait_for(done: Callable[[list[str]], bool], what: str) -> None:
        while not done([line["event"] for line in logs]):
            assert time.monotonic() < deadline, what
            time.sleep(0.01)

    with structlog.testing.capture_logs() as logs:
        thread = threading.Thread(target=worker.run)
        thread.start()
        wait_for(lambda events: events.count("attempt_finished") >= 3, "the fast jobs finish")
        worker.request_stop()
        if back_when_stopping:
            wait_for(lambda events: "worker_stopping" in events, "the stop begins")
            store.outages, store.down = 0, False
        thread.join(10)
        assert not thread.is_alive()
    return store, fast, slow, logs


def test_a_stop_during_an_outage_reports_what_it_leaves_behind(live_store: Store) -> None:
    # SIGTERM while the database is away (a crash drill in session 9): the worker exited 0
    # after its grace period and the outcomes it held, successes among them, were gone
    # without a word; the jobs it "released" were not released. Both are now reported, with
    # the job ids, and the writer keeps trying until the grace period ends first.
    store, fast, slow, logs = _stop_mid_outage(live_store, 0.3, back_when_stopping=False)
    by_event = {line["event"]: line for line in logs}
    unwritten = by_event["outcomes_unwritten"]
    assert unwritten["log_level"] == "error" and unwritten["count"] == 3
    assert sorted(unwritten["job_ids"]) == fast
    not_released = by_event["jobs_not_released"]
    assert (not_released["count"], not_released["job_ids"]) == (1, [slow])
    assert "jobs_released" not in by_event
    store.down = False  # the database is back: the jobs wait for their leases, as reported
    assert {store.get_job(i).state for i in [*fast, slow]} == {JobState.RUNNING}


def test_a_database_back_within_the_grace_gets_the_outcomes_and_the_releases(
    live_store: Store,
) -> None:
    # The same stop, but the database answers again as the stop begins: the held outcomes
    # are written and the running job is released (not left to its lease), and no error
    # line says otherwise.
    store, fast, slow, logs = _stop_mid_outage(live_store, 5, back_when_stopping=True)
    events = [line["event"] for line in logs]
    assert "outcomes_unwritten" not in events and "jobs_not_released" not in events
    assert "jobs_released" in events
    assert {store.get_job(i).state for i in fast} == {JobState.SUCCEEDED}
    assert store.get_job(slow).state is JobState.PENDING  # released, not charged
    assert [a.outcome for a in store.attempts_of(slow)] == ["released"]
