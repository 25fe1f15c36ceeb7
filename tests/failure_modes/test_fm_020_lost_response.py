"""FM_020: Billing applies the effect but the response is lost; the retry must not apply it again.

Real mock servers: Billing's ``lost_response`` behaviour applies an entity's first write, stores
the real answer under its key, and tells the client 502. The handler sees a retryable error and
the engine retries. Unsafe variant: the same plugins with an effect key per *attempt*
(``per_attempt_keys``). Prevention: effect keys per lineage (``JobContext.effect_key``), so the
retry is answered from Billing's key store; Billing's natural key (``external_id``) as the
second layer; the ledger row written with the success.
"""

from __future__ import annotations

import pytest
from syncbridge_customer import sync_customer

from syncbridge.db.queries import Store
from syncbridge.jobtypes import JobType
from syncbridge.states import JobState
from tests.failure_modes.support import request, violations
from tests.failure_modes.test_fm_02_kit import (
    UNSAFE_INVOICE,
    Mocks,
    all_finished,
    invoice_key,
    mocks_for,
    per_attempt_keys,
    real_registry,
    run_workers,
    settings_for,
    upsert_key,
    worker,
)
from tests.helpers import registry_with

INVOICE, ITS_CUSTOMER, CUSTOMER = "i_2101", "c_1101", "c_1102"


@pytest.fixture
def mocks(request: pytest.FixtureRequest) -> Mocks:
    mocks = mocks_for(request)
    lost = {entity: "lost_response" for entity in (INVOICE, ITS_CUSTOMER, CUSTOMER)}
    mocks.set_faults("billing", entities=lost)
    return mocks


def sync(store: Store, mocks: Mocks, kinds: tuple[str, str]) -> tuple[int, int]:
    """One invoice job and one customer job, each meeting a lost response; run to the end."""
    invoice = store.enqueue(request(INVOICE, job_type=kinds[0])).job
    customer = store.enqueue(request(CUSTOMER, job_type=kinds[1])).job
    if kinds[0] == "invoice":
        registry = real_registry()
    else:
        registry = registry_with(
            UNSAFE_INVOICE, per_attempt_keys(JobType("c", sync_customer), kinds[1])
        )
    runner = worker(store, registry, settings_for(mocks), concurrency=2)
    run_workers([runner], all_finished(store))
    return invoice.id, customer.id


def test_repro_per_attempt_keys_apply_the_effect_again(live_store: Store, mocks: Mocks) -> None:
    invoice_id, customer_id = sync(live_store, mocks, ("unsafe_invoice", "unsafe_customer"))
    assert {j.state for j in live_store.list_jobs()} == {JobState.SUCCEEDED}
    assert mocks.requests("billing").get("502", 0) == 3  # three responses were lost
    effects = mocks.effects()
    # The customer job's one upsert: applied once per attempt, twice in all.
    assert sorted(n for k, n in effects.items() if k.startswith(f"sb-{customer_id}-")) == [1, 1]
    # The invoice job upserted its customer on each of its three attempts: three times.
    assert sum(n for k, n in effects.items() if k.startswith(f"sb-{invoice_id}-")) == 4
    # Only Billing's natural key kept the invoice single (the third POST got 409 duplicate) ...
    assert len(mocks.invoices(INVOICE)) == 1
    # ... and the ledger links to the request that created it (Billing names it in the 409).
    [billed] = mocks.invoices(INVOICE)
    rows = live_store.ledger_rows(lineage_id=invoice_id)
    [row] = [r for r in rows if r["upstream_ref"] == billed["id"]]
    assert effects[row["effect_key"]] == 1


def test_prevented_lineage_keys_apply_each_effect_once(live_store: Store, mocks: Mocks) -> None:
    invoice_id, customer_id = sync(live_store, mocks, ("invoice", "customer"))
    assert mocks.requests("billing").get("502", 0) == 3  # the same three lost responses
    invoice = live_store.get_job(invoice_id)
    assert invoice.state is JobState.SUCCEEDED and invoice.attempt == 3
    outcomes = [(a.outcome, a.http_status) for a in live_store.attempts_of(invoice_id)]
    assert outcomes == [("error", 502), ("error", 502), ("succeeded", None)]
    assert live_store.get_job(customer_id).attempt == 2
    # Every key applied exactly once: the retries were answered from Billing's key store.
    assert mocks.effects() == {
        upsert_key(invoice_id, ITS_CUSTOMER): 1,
        invoice_key(invoice_id, INVOICE): 1,
        upsert_key(customer_id, CUSTOMER): 1,
    }
    [billed] = mocks.invoices(INVOICE)
    rows = {
        r["effect_key"]: r["upstream_ref"] for r in live_store.ledger_rows(lineage_id=invoice_id)
    }
    assert rows == {
        invoice_key(invoice_id, INVOICE): billed["id"],  # the one the lost response would name
        upsert_key(invoice_id, ITS_CUSTOMER): ITS_CUSTOMER,  # its customer, on the way (FM_033)
    }
    [customer_row] = live_store.ledger_rows(lineage_id=customer_id)
    assert customer_row["effect_key"] == upsert_key(customer_id, CUSTOMER)
    # Every effect Billing applied is in the ledger, once.
    assert {r["effect_key"] for r in live_store.ledger_rows()} == set(mocks.effects())
    assert violations(live_store) == {}
