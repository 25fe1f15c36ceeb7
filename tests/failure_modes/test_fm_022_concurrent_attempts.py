"""FM_022: two attempts of one lineage in flight at once.

The first worker's renewals stop landing while its handler waits on a slow Billing call (the
customer upsert holds its key for SLOW seconds at Billing). The lease expires, the rescuer
returns the job, and a second worker starts attempt 2 while attempt 1's request is still being
executed. Unsafe variant: effect keys per attempt (``per_attempt_keys``): Billing cannot tell the
two requests are one and executes both. Prevention: one key per lineage, so Billing answers the
second request 409 "in progress" (retryable) and later the stored answer; fenced completion
discards attempt 1's late success.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from syncbridge.db.queries import Store
from syncbridge.plugins import Registry
from syncbridge.states import JobState
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.failure_modes.test_fm_02_kit import (
    UNSAFE_INVOICE,
    Mocks,
    invoice_key,
    mocks_for,
    real_registry,
    run_workers,
    settings_for,
    upsert_key,
    worker,
)
from tests.helpers import registry_with

INVOICE, CUSTOMER = "i_2201", "c_1201"
SLOW = 1.2  # seconds Billing holds the upsert's key while it "works"


class NoRenewalWorker(Worker):
    """The trigger: this worker's renewals never reach the database. It claims one job only."""

    def _renew(self) -> None:
        pass

    def _claim(self) -> None:
        if self.stats.claimed == 0:
            super()._claim()


class StartsLater(Worker):
    """Starts its loop once ``gate`` is set (the first worker's attempt has begun)."""

    gate = threading.Event()

    def run(self) -> None:
        assert self.gate.wait(30)
        super().run()


@pytest.fixture
def mocks(request: pytest.FixtureRequest) -> Mocks:
    mocks = mocks_for(request)
    mocks.set_faults("billing", entities={CUSTOMER: "slow"}, slow_seconds=SLOW)
    return mocks


def overlap(store: Store, mocks: Mocks, registry: Registry, job_type: str) -> tuple[int, Worker]:
    job = store.enqueue(request(INVOICE, job_type=job_type, max_retries=8)).job
    settings = settings_for(
        mocks, job_lease_seconds=0.3, rescue_interval_seconds=0.05, job_backoff_seconds_base=0.2
    )
    reported, claimed = threading.Event(), threading.Event()

    def on_event(event: str, _fields: dict[str, Any]) -> None:
        if event == "attempt_started":
            claimed.set()
        if event in ("lease_lost", "job_state"):
            reported.set()

    first = worker(
        store,
        registry,
        settings,
        NoRenewalWorker,
        worker_id="first",
        concurrency=1,
        on_event=on_event,
    )
    second = worker(store, registry, settings, StartsLater, worker_id="second", concurrency=1)
    second.gate = claimed

    def done() -> bool:
        return reported.is_set() and store.get_job(job.id).state is JobState.SUCCEEDED

    run_workers([first, second], done, timeout=30, what="both attempts to report")
    return job.id, first


def test_repro_per_attempt_keys_execute_both_requests(live_store: Store, mocks: Mocks) -> None:
    job_id, first = overlap(live_store, mocks, registry_with(UNSAFE_INVOICE), "unsafe_invoice")
    assert first.stats.leases_lost == 1
    attempts = live_store.attempts_of(job_id)
    assert [(a.worker_id, a.outcome) for a in attempts] == [
        ("first", "lease_expired"),
        ("second", "succeeded"),
    ]
    # Billing never saw a duplicate (no "in progress" answer: attempt 2 simply succeeded) and
    # executed both upserts: two upserts and one invoice in one lineage.
    effects = mocks.effects()
    assert sorted(n for key, n in effects.items() if key.startswith(f"sb-{job_id}-")) == [1, 1, 1]
    [billed] = mocks.invoices(INVOICE)  # the natural key kept the invoice single
    rows = live_store.ledger_rows(lineage_id=job_id)
    [row] = [r for r in rows if r["upstream_ref"] == billed["id"]]
    assert effects[row["effect_key"]] == 1  # linked to the request that created the invoice


def test_prevented_same_key_is_executed_once(live_store: Store, mocks: Mocks) -> None:
    job_id, first = overlap(live_store, mocks, real_registry(), "invoice")
    assert first.stats.leases_lost == 1  # attempt 1's late success was fenced out
    job = live_store.get_job(job_id)
    assert job.state is JobState.SUCCEEDED
    attempts = live_store.attempts_of(job_id)
    assert (attempts[0].worker_id, attempts[0].outcome) == ("first", "lease_expired")
    assert (attempts[-1].worker_id, attempts[-1].outcome) == ("second", "succeeded")
    # While attempt 1's request held the key, Billing answered the second one "in progress".
    in_progress = [a for a in attempts[1:-1] if a.http_status == 409]
    assert in_progress and all("in progress" in (a.error_message or "") for a in in_progress)
    assert all(a.outcome == "error" for a in attempts[1:-1])
    assert mocks.effects() == {upsert_key(job_id, CUSTOMER): 1, invoice_key(job_id, INVOICE): 1}
    [billed] = mocks.invoices(INVOICE)
    rows = {r["effect_key"]: r["upstream_ref"] for r in live_store.ledger_rows(lineage_id=job_id)}
    assert rows == {
        invoice_key(job_id, INVOICE): billed["id"],
        upsert_key(job_id, CUSTOMER): CUSTOMER,
    }
    assert violations(live_store) == {}
