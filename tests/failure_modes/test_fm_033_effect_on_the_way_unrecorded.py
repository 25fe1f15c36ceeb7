"""FM_033: a success records every effect its handler applied, not only the job's own. The real
``invoice`` job type through the real engine (``syncbridge.testing.run_job``), Billing and the
CRM mocked with respx; the keys Billing answered 2xx for are compared with the ledger."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import respx
from syncbridge_invoice import register_job_types

from syncbridge.jobtypes import AppliedEffect, JobType
from syncbridge.models import Completion
from syncbridge.testing import JobRun, run_job

CUSTOMER = {"id": "c_1", "name": "Ada", "email": "ada@example.com", "country": "GB", "version": 1}
INVOICE = {"id": "i_1", "customer_id": "c_1", "amount_cents": 1200, "currency": "EUR"}


def invoice_job_type() -> JobType:
    found: list[JobType] = []
    register_job_types(register=found.append)
    return found[0]


@pytest.fixture
def billing_applied() -> Iterator[list[str]]:
    """The CRM and Billing, mocked; yields the keys of the writes Billing applied (2xx)."""
    applied: list[str] = []

    def write(request: httpx.Request) -> httpx.Response:
        applied.append(request.headers["Idempotency-Key"])
        if request.method == "PUT":
            return httpx.Response(200, json=CUSTOMER)
        return httpx.Response(201, json={"id": "inv_000001"})

    with respx.mock(assert_all_called=False) as router:
        router.get("http://crm.test/invoices/i_1").respond(json=INVOICE)
        router.get("http://crm.test/customers/c_1").respond(json=CUSTOMER)
        router.put("http://billing.test/customers/c_1").mock(side_effect=write)
        router.post("http://billing.test/invoices").mock(side_effect=write)
        yield applied


def unrecorded(run: JobRun, applied: list[str]) -> set[str]:
    return set(applied) - {row["effect_key"] for row in run.ledger}


def test_repro_the_customer_upsert_of_an_invoice_job_is_not_in_the_ledger(
    billing_applied: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The unsafe variant: a completion carries the job's own effect only (before session 12).
    def own_effect_only(self: Completion) -> tuple[AppliedEffect, ...]:
        return (self.effect,) if self.effect else ()

    monkeypatch.setattr(Completion, "effects", property(own_effect_only))
    run = run_job(invoice_job_type(), "i_1")
    assert run.job.state == "succeeded"
    assert len(billing_applied) == 2  # the customer upsert, then the invoice
    [missing] = unrecorded(run, billing_applied)
    assert missing == billing_applied[0]  # the upsert: applied by Billing, in no ledger row


def test_prevented_every_effect_billing_applied_for_the_job_is_in_the_ledger(
    billing_applied: list[str],
) -> None:
    run = run_job(invoice_job_type(), "i_1")
    assert run.job.state == "succeeded"
    assert len(billing_applied) == 2
    assert unrecorded(run, billing_applied) == set()
    refs = {row["effect_key"]: row["upstream_ref"] for row in run.ledger}
    assert refs == {billing_applied[0]: "c_1", billing_applied[1]: "inv_000001"}
    assert {row["job_id"] for row in run.ledger} == {run.job.id}
