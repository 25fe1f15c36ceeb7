"""FM_007: a lease expires while its handler still runs (slow upstream call, renewal broken).

The worker is alive but its renewals do not land, so the rescuer returns the job and a second
worker runs it: two handlers of one entity at once. That much no engine can prevent (handlers run
at least once). What must hold: the first handler's late completion changes nothing, and the
effect has one ledger row. Unsafe variant: the first worker completes through a store without the
attempt/owner fence. Prevention: fenced completion (``LifecycleStore._fenced``,
``_write_transition``) and effect keys per lineage (``JobContext.effect_key``) with a unique
ledger ``effect_key``.

Real worker loops in threads with the system clock (tiny lease); handlers rendezvous through
events, so the overlap is certain and nothing sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from syncbridge.db.queries import Store
from syncbridge.db.schema import jobs
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success
from syncbridge.models import Completion, Job
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.helpers import fast_settings, registry_with

WAIT = 20.0


class UnfencedStore(Store):
    """Unsafe: completes whatever attempt the job is on now, whoever holds it."""

    def _fenced(
        self, conn: Connection, completions: Sequence[Completion]
    ) -> list[tuple[Completion, Job | None, int | None]]:
        found = []
        for completion in completions:
            row = conn.execute(
                self._running_with_attempt().where(jobs.c.id == completion.job_id)
            ).one_or_none()
            found.append(
                (completion, *((Job.from_row(row), row.attempt_row_id) if row else (None, None)))
            )
        return found


class NoRenewalWorker(Worker):
    """The trigger, in both tests: this worker's renewals never reach the database."""

    def _renew(self) -> None:
        pass


class Scenario:
    def __init__(self) -> None:
        self.first_started = threading.Event()
        self.second_started = threading.Event()
        self.first_reported = threading.Event()
        self.running: set[int] = set()
        self.max_running = 0
        self.state_when_second_returned: JobState | None = None
        self.lock = threading.Lock()

    def handler(self, store: Store) -> JobType:
        def slow_sync(ctx: JobContext) -> Success:
            with self.lock:
                self.running.add(ctx.attempt)
                self.max_running = max(self.max_running, len(self.running))
            if ctx.attempt == 1:
                self.first_started.set()
                assert self.second_started.wait(WAIT)  # still in its upstream call
            else:
                self.second_started.set()
                assert self.first_reported.wait(WAIT)
                self.state_when_second_returned = store.get_job(ctx.job_id).state
            with self.lock:
                self.running.discard(ctx.attempt)
            key = ctx.effect_key("create_invoice", {"invoice": ctx.entity_id})
            return Success(AppliedEffect(key, "billing", f"inv-{ctx.attempt}"))

        return JobType("slow_sync", slow_sync)

    def reporter(self, done: threading.Event) -> Any:
        """``on_event`` for a worker: ``done`` once the store answered its completion."""

        def on_event(event: str, _fields: dict[str, Any]) -> None:
            if event in ("lease_lost", "job_state"):
                done.set()

        return on_event

    def run(self, first_store: Store, store: Store) -> tuple[Worker, Worker]:
        registry = registry_with(self.handler(store))
        settings = fast_settings(job_lease_seconds=0.3, rescue_interval_seconds=0.05)
        second_reported = threading.Event()
        first = NoRenewalWorker(
            first_store,
            registry,
            settings,
            concurrency=1,
            worker_id="first",
            on_event=self.reporter(self.first_reported),
        )
        second = Worker(
            store,
            registry,
            settings,
            concurrency=1,
            worker_id="second",
            on_event=self.reporter(second_reported),
        )
        store.enqueue(request("invoice-9", job_type="slow_sync", max_retries=3))
        threads = [threading.Thread(target=first.run), threading.Thread(target=second.run)]
        threads[0].start()
        try:
            assert self.first_started.wait(WAIT)
            threads[1].start()  # idle until the first lease expires and is rescued
            assert self.first_reported.wait(WAIT) and second_reported.wait(WAIT)
        finally:
            first.request_stop()
            second.request_stop()
            for thread in threads:
                if thread.ident is not None:  # started
                    thread.join(WAIT)
        return first, second


def test_repro_unfenced_late_completion_of_the_first_handler_lands(live_store: Store) -> None:
    scenario = Scenario()
    first, second = scenario.run(UnfencedStore(live_store.engine), live_store)
    assert scenario.max_running == 2  # two handlers of one entity
    job = live_store.list_jobs()[0]
    # The first handler's report closed the second's attempt while the second still ran.
    assert scenario.state_when_second_returned is JobState.SUCCEEDED
    assert first.stats.leases_lost == 0 and second.stats.leases_lost == 1
    attempts = live_store.attempts_of(job.id)
    assert [(a.worker_id, a.outcome) for a in attempts][-1] == ("second", "succeeded")
    # The ledger records the first (fenced-out) attempt's answer, not the final attempt's.
    assert [row["upstream_ref"] for row in live_store.ledger_rows()] == ["inv-1"]


def test_prevented_fencing_discards_the_first_handlers_completion(live_store: Store) -> None:
    scenario = Scenario()
    first, second = scenario.run(live_store, live_store)
    assert scenario.max_running == 2  # the overlap is real in the real engine too
    assert scenario.state_when_second_returned is JobState.RUNNING  # untouched by the first
    assert first.stats.leases_lost == 1 and second.stats.leases_lost == 0
    job = live_store.list_jobs()[0]
    assert job.state is JobState.SUCCEEDED and job.attempt == 2
    outcomes = [(a.worker_id, a.outcome) for a in live_store.attempts_of(job.id)]
    assert outcomes == [("first", "lease_expired"), ("second", "succeeded")]
    [row] = live_store.ledger_rows()
    assert row["upstream_ref"] == "inv-2" and row["job_id"] == job.id
    assert violations(live_store) == {}
