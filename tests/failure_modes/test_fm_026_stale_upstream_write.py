"""FM_026 (known risk): a handler that lost its lease lands an older customer write at Billing
after a newer one.

Real mock servers. Attempt 1 reads the CRM customer (version 1), then its Billing write is held
back (a stalled network path: a gate in front of the client) while its renewals fail. The CRM
record changes (version 2); attempt 2 on a second worker syncs version 2 and succeeds. Then
attempt 1's write goes out. Our database is safe either way (the completion is fenced out);
Billing is last writer wins unless it can refuse older versions. Unsafe variant: a customer
handler that sends no version. Prevention: the real plugins send the CRM ``version``; Billing
refuses an older one with 409 "stale version", which the plugins treat as superseded.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from syncbridge_customer import validate_customer

from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect, JobContext, JobType, Success
from syncbridge.plugins import Registry
from syncbridge.states import JobState
from syncbridge.upstream import segment
from syncbridge.worker import Worker
from tests.failure_modes.support import request, violations
from tests.failure_modes.test_fm_02_kit import (
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

INVOICE, CUSTOMER, WAIT = "i_2601", "c_1601", 30.0
NEW_NAME = "Renamed Later"


def unversioned_customer_sync(ctx: JobContext) -> Success:
    """Unsafe: ``sync_customer`` without the CRM version in the body."""
    record = ctx.upstream("crm").get_json(f"/customers/{segment(ctx.entity_id)}")
    body = validate_customer(record, ctx.entity_id)
    del body["version"]
    key = ctx.effect_key("upsert_customer", {"id": ctx.entity_id, **body})
    path = f"/customers/{segment(ctx.entity_id)}"
    ctx.upstream("billing").send_json("PUT", path, body, idempotency_key=key)
    return Success(AppliedEffect(key, "billing", ctx.entity_id))


class Held:
    """A Billing client whose writes wait for ``gate`` (``reached`` says one is waiting)."""

    def __init__(self, client: Any, reached: threading.Event, gate: threading.Event) -> None:
        self.client, self.reached, self.gate = client, reached, gate

    def bind(self, *, correlation_id: str) -> Held:
        return Held(self.client.bind(correlation_id=correlation_id), self.reached, self.gate)

    def _hold(self, method: str) -> None:
        if method != "GET":
            self.reached.set()
            assert self.gate.wait(WAIT)

    def request(self, method: str, *args: Any, **kw: Any) -> Any:
        self._hold(method)
        return self.client.request(method, *args, **kw)

    def send_json(self, method: str, *args: Any, **kw: Any) -> Any:
        self._hold(method)
        return self.client.send_json(method, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Stalled(Worker):
    """Attempt 1's worker: its renewals never land, it claims once, and its Billing writes are
    held back until ``gate`` opens."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.reached, self.gate = threading.Event(), threading.Event()
        held = Held(self.upstreams["billing"], self.reached, self.gate)
        self.upstreams = {**self.upstreams, "billing": held}

    def _renew(self) -> None:
        pass

    def _claim(self) -> None:
        if self.stats.claimed == 0:
            super()._claim()


@pytest.fixture
def mocks(request: pytest.FixtureRequest) -> Mocks:
    return mocks_for(request)


def stale_write(store: Store, mocks: Mocks, registry: Registry, job_type: str, entity: str) -> int:
    """Run the scenario; return the job id. Billing's record is read by the caller."""
    job = store.enqueue(request(entity, job_type=job_type)).job
    settings = settings_for(mocks, job_lease_seconds=0.3, rescue_interval_seconds=0.05)
    first = worker(store, registry, settings, Stalled, worker_id="first", concurrency=1)
    second = worker(store, registry, settings, worker_id="second")
    thread = threading.Thread(target=run_workers, args=([first], lambda: first.stats.leases_lost))
    thread.start()
    try:
        assert first.reached.wait(WAIT)  # attempt 1 holds version 1, about to write
        assert mocks.change_crm_customer(CUSTOMER, name=NEW_NAME)["version"] == 2
        run_workers([second], lambda: store.get_job(job.id).state is JobState.SUCCEEDED)
        assert mocks.billing_customer(CUSTOMER)["name"] == NEW_NAME  # version 2 landed
    finally:
        first.gate.set()  # now the stale write goes out
        thread.join(WAIT)
    assert first.stats.leases_lost == 1  # attempt 1's completion changed nothing here
    outcomes = [(a.worker_id, a.outcome) for a in store.attempts_of(job.id)]
    assert outcomes == [("first", "lease_expired"), ("second", "succeeded")]
    filed = 2 if job_type == "invoice" else 1  # an invoice job files its customer upsert too
    assert len(store.ledger_rows()) == filed and violations(store) == {}
    return job.id


def test_repro_stale_write_without_a_version_overwrites_the_newer_one(
    live_store: Store, mocks: Mocks
) -> None:
    registry = registry_with(JobType("customer", unversioned_customer_sync))
    stale_write(live_store, mocks, registry, "customer", CUSTOMER)
    assert mocks.billing_customer(CUSTOMER)["name"] != NEW_NAME  # the older record won
    assert sorted(mocks.effects().values()) == [1, 1]  # both writes were applied


@pytest.mark.parametrize(("job_type", "entity"), [("customer", CUSTOMER), ("invoice", INVOICE)])
def test_prevented_billing_refuses_the_older_version(
    live_store: Store, mocks: Mocks, job_type: str, entity: str
) -> None:
    job_id = stale_write(live_store, mocks, real_registry(), job_type, entity)
    record = mocks.billing_customer(CUSTOMER)
    assert (record["name"], record["version"]) == (NEW_NAME, 2)
    assert mocks.requests("billing").get("409") == 1  # "stale version", once
    expected = {upsert_key(job_id, CUSTOMER, name=NEW_NAME, version=2)}
    if job_type == "invoice":  # the stale attempt went ahead; its POST got the stored answer
        expected.add(invoice_key(job_id, INVOICE))
        assert len(mocks.invoices(INVOICE)) == 1
    assert mocks.effects() == dict.fromkeys(expected, 1)
