"""The customer and invoice handlers through the real engine (syncbridge.testing.run_job)
against respx-mocked upstreams (respx intercepts every httpx client while active)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import respx
from syncbridge_customer import register_job_types as register_customer
from syncbridge_invoice import register_job_types as register_invoice

from syncbridge.jobtypes import JobType
from syncbridge.testing import run_job

CUSTOMER = {"id": "c_1", "name": "Ada", "email": "ada@example.com", "country": "GB", "version": 1}
INVOICE = {
    "id": "i_1",
    "customer_id": "c_1",
    "amount_cents": 1200,
    "currency": "EUR",
    "description": "x",
    "version": 1,
}


def job_type(register: Any) -> JobType:
    found: list[JobType] = []
    register(register=found.append)
    return found[0]


@pytest.fixture
def upstreams() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=False) as router:
        yield router


def test_customer_sync_upserts_with_a_key_and_records_the_effect(
    upstreams: respx.MockRouter,
) -> None:
    upstreams.get("http://crm.test/customers/c_1").respond(json=CUSTOMER)
    put = upstreams.put("http://billing.test/customers/c_1").respond(json={"id": "c_1"})
    run = run_job(job_type(register_customer), "c_1", correlation_id="corr-7")
    assert run.job.state == "succeeded"
    request = put.calls.last.request
    assert request.headers["X-Correlation-ID"] == "corr-7"
    key = request.headers["Idempotency-Key"]
    assert [row["effect_key"] for row in run.ledger] == [key]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"name": ""}, "name"),
        ({"id": "c_2"}, "id"),
        ({"version": "one"}, "version"),
    ],
)
def test_customer_validation_names_the_field(
    upstreams: respx.MockRouter, patch: dict[str, Any], field: str
) -> None:
    upstreams.get("http://crm.test/customers/c_1").respond(json=CUSTOMER | patch)
    put = upstreams.put("http://billing.test/customers/c_1").respond(json={})
    run = run_job(job_type(register_customer), "c_1", max_retries=3)
    assert run.job.state == "failed" and len(run.attempts) == 1
    assert run.job.last_error is not None and f"'{field}'" in run.job.last_error["message"]
    assert not put.called


def test_missing_customer_fails_terminally(upstreams: respx.MockRouter) -> None:
    upstreams.get("http://crm.test/customers/c_1").respond(404, json={"detail": "nope"})
    run = run_job(job_type(register_customer), "c_1", max_retries=3)
    assert run.job.state == "failed" and run.attempts[0].error_class == "NotFound"


def test_invoice_same_key_on_retry_and_existing_invoice_is_applied(
    upstreams: respx.MockRouter,
) -> None:
    upstreams.get("http://crm.test/invoices/i_1").respond(json=INVOICE)
    upstreams.get("http://crm.test/customers/c_1").respond(json=CUSTOMER)
    put = upstreams.put("http://billing.test/customers/c_1").respond(json={"id": "c_1"})
    post = upstreams.post("http://billing.test/invoices").mock(
        side_effect=[
            respx.MockResponse(502, text="response lost"),
            respx.MockResponse(
                409, json={"detail": "duplicate external_id", "existing_id": "inv_9"}
            ),
        ]
    )
    run = run_job(job_type(register_invoice), "i_1", max_retries=2)
    assert run.job.state == "succeeded"
    keys = {call.request.headers["Idempotency-Key"] for call in post.calls}
    assert len(post.calls) == 2 and len(keys) == 1  # the retry sent the same key
    customer_keys = {call.request.headers["Idempotency-Key"] for call in put.calls}
    assert len(put.calls) == 2 and len(customer_keys) == 1
    # The invoice Billing already held, and the customer upsert of the attempt that succeeded.
    assert sorted((r["effect_key"], r["upstream_ref"]) for r in run.ledger) == sorted(
        [(keys.pop(), "inv_9"), (customer_keys.pop(), "c_1")]
    )


def test_changed_crm_body_changes_the_key(upstreams: respx.MockRouter) -> None:
    keys = []
    for amount in (1200, 1300):
        with respx.mock(assert_all_called=False) as router:
            router.get("http://crm.test/invoices/i_1").respond(
                json=INVOICE | {"amount_cents": amount}
            )
            router.get("http://crm.test/customers/c_1").respond(json=CUSTOMER)
            router.put("http://billing.test/customers/c_1").respond(json={})
            post = router.post("http://billing.test/invoices").respond(201, json={"id": "inv_1"})
            run_job(job_type(register_invoice), "i_1")
            keys.append(post.calls.last.request.headers["Idempotency-Key"])
    assert keys[0] != keys[1]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"currency": "eur"}, "currency"),
        ({"amount_cents": -1}, "amount_cents"),
        ({"amount_cents": "12"}, "amount_cents"),
        ({"customer_id": None}, "customer_id"),
    ],
)
def test_invoice_validation_names_the_field(
    upstreams: respx.MockRouter, patch: dict[str, Any], field: str
) -> None:
    upstreams.get("http://crm.test/invoices/i_1").respond(json=INVOICE | patch)
    run = run_job(job_type(register_invoice), "i_1")
    assert run.job.state == "failed"
    assert run.job.last_error is not None and f"'{field}'" in run.job.last_error["message"]


def test_an_older_customer_write_is_superseded_not_applied(upstreams: respx.MockRouter) -> None:
    """Billing refuses a version older than the one it holds (a stale worker's late write):
    the job succeeds, applies nothing and records no effect."""
    upstreams.get("http://crm.test/customers/c_1").respond(json=CUSTOMER)
    put = upstreams.put("http://billing.test/customers/c_1").respond(
        409, json={"detail": "stale version", "current_version": 5}
    )
    run = run_job(job_type(register_customer), "c_1")
    assert put.calls.last.request.read() and b'"version":1' in put.calls.last.request.read()
    assert run.job.state == "succeeded" and run.ledger == []
