"""Mock Billing: customer upserts, invoices, natural keys and fault behaviours."""

from __future__ import annotations

import httpx
import pytest
from mock_helpers import (
    HOSTILE_IDS,
    InProcess,
    billing_settings,
    invoice_body,
    invoice_effects,
    quoted,
)

from mocks.billing import BillingState, create_billing_app


def post_invoice(billing: InProcess, key: str, **body: object) -> httpx.Response:
    return billing.post("/invoices", json=invoice_body(**body), headers={"Idempotency-Key": key})


def test_put_customer_creates_then_updates(billing: InProcess) -> None:
    body = {"name": "Ada", "email": "ada@example.com", "country": "GB"}
    created = billing.put("/customers/c_1005", json=body)
    assert created.status_code == 201
    assert created.json() == {"id": "c_1005", **body, "version": 1}
    updated = billing.put("/customers/c_1005", json={**body, "name": "Ada L."})
    assert updated.status_code == 200 and updated.json()["name"] == "Ada L."
    assert billing.get("/customers/c_1005").json() == updated.json()
    assert billing.get("/customers/c_1006").status_code == 404


def test_customer_writes_list_each_applied_upsert_with_its_key_and_request(
    billing: InProcess,
) -> None:
    """What a caller that lost an upsert's answer reads to learn whether its request was
    applied: every applied write, oldest first, with its key (none for a write sent without
    one) and the request's X-Correlation-ID; a replayed key and a refused stale write add
    nothing; an unknown customer has no writes."""

    def writes(customer_id: str) -> httpx.Response:
        return billing.get("/customer_writes", params={"customer_id": customer_id})

    body = {"name": "Ada", "email": "ada@example.com"}
    assert writes("c_1005").json() == {"items": [], "in_progress": []}
    first = {"Idempotency-Key": "k1", "X-Correlation-ID": "corr-a"}
    billing.put("/customers/c_1005", json={**body, "version": 2}, headers=first)
    again = {"Idempotency-Key": "k1", "X-Correlation-ID": "corr-b"}  # answered from the key
    billing.put("/customers/c_1005", json={**body, "version": 2}, headers=again)
    stale = billing.put(
        "/customers/c_1005", json={**body, "version": 1}, headers={"Idempotency-Key": "k2"}
    )
    assert stale.status_code == 409
    billing.put("/customers/c_1005", json={**body, "name": "Ada L.", "version": 3})
    listed = writes("c_1005")
    assert listed.status_code == 200
    assert listed.json() == {
        "items": [
            {"idempotency_key": "k1", "correlation_id": "corr-a", "version": 2},
            {"idempotency_key": None, "correlation_id": None, "version": 3},
        ],
        "in_progress": [],
    }
    assert writes("c_1006").json() == {"items": [], "in_progress": []}
    assert billing.get("/customer_writes").status_code == 422  # which customer?
    billing.post("/_reset")
    assert writes("c_1005").json() == {"items": [], "in_progress": []}


def test_customer_writes_list_the_requests_billing_is_still_processing(
    billing: InProcess, billing_state: BillingState
) -> None:
    """A write received and not answered yet (Billing is slow, or the caller gave up waiting)
    is listed as in progress until it is answered, applied or not: a caller that lost its answer
    must not conclude "not applied" while it may still be."""
    listed = lambda: billing.get("/customer_writes", params={"customer_id": "c_1005"}).json()  # noqa: E731
    with billing_state.processing("c_1005", "k1", "corr-a"):
        assert listed()["in_progress"] == [{"idempotency_key": "k1", "correlation_id": "corr-a"}]
        with billing_state.processing("c_1005", None, None):
            assert len(listed()["in_progress"]) == 2
    assert listed() == {"items": [], "in_progress": []}
    # Through a real request: listed while it runs, gone once answered.
    seen: list[object] = []
    real = billing_state.upsert_customer

    def upsert_and_look(*args: object) -> object:
        seen.append(billing_state.customer_requests("c_1005"))
        return real(*args)  # type: ignore[arg-type]

    billing_state.upsert_customer = upsert_and_look  # type: ignore[method-assign]
    headers = {"Idempotency-Key": "k2", "X-Correlation-ID": "corr-b"}
    billing.put("/customers/c_1005", json={"name": "Ada", "email": "a@b.co"}, headers=headers)
    assert seen == [[{"idempotency_key": "k2", "correlation_id": "corr-b"}]]
    assert listed()["in_progress"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"name": "", "email": "a@example.com"},
        {"name": "   ", "email": "a@example.com"},
        {"email": "a@example.com"},
        {"name": "Ada"},
        {"name": 7, "email": "a@example.com"},
        {"name": "Ada", "email": "a@example.com", "version": "2"},
    ],
)
def test_put_customer_refuses_bad_bodies(billing: InProcess, body: dict[str, object]) -> None:
    response = billing.put("/customers/c_1005", json=body)
    assert response.status_code == 422
    assert billing.get("/_stats").json()["effects"] == {}


def test_put_customer_refuses_an_older_version(billing: InProcess) -> None:
    body = {"name": "Ada", "email": "ada@example.com"}
    billing.put("/customers/c_1005", json={**body, "version": 3})
    stale = billing.put("/customers/c_1005", json={**body, "name": "Old", "version": 2})
    assert stale.status_code == 409
    assert stale.json() == {"detail": "stale version", "current_version": 3}
    assert billing.get("/customers/c_1005").json()["name"] == "Ada"


def test_put_customer_counts_effects_per_key(billing: InProcess) -> None:
    body = {"name": "Ada", "email": "ada@example.com"}
    billing.put("/customers/c_1005", json=body, headers={"Idempotency-Key": "k-put"})
    again = billing.put("/customers/c_1005", json=body, headers={"Idempotency-Key": "k-put"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    billing.put("/customers/c_1005", json=body)
    assert billing.get("/_stats").json()["effects"] == {"k-put": 1, "(no key)": 1}


def test_create_invoice_and_find_it(billing: InProcess, customer: str) -> None:
    created = post_invoice(billing, "k1")
    assert created.status_code == 201
    invoice = created.json()
    assert invoice["id"].startswith("inv_") and invoice["external_id"] == "i_2001"
    assert billing.get(f"/invoices/{invoice['id']}").json() == invoice
    assert billing.get("/invoices", params={"external_id": "i_2001"}).json() == {"items": [invoice]}
    assert billing.get("/invoices", params={"external_id": "i_2002"}).json() == {"items": []}
    assert billing.get("/invoices/inv_999999").status_code == 404


def test_missing_idempotency_key_is_400(billing: InProcess, customer: str) -> None:
    response = billing.post("/invoices", json=invoice_body())
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["detail"]
    too_long = post_invoice(billing, "k" * 256)
    assert too_long.status_code == 400


@pytest.mark.parametrize(
    "change",
    [
        {"amount_cents": -1},
        {"amount_cents": "12"},
        {"amount_cents": 12.5},
        {"currency": "EURO"},
        {"external_id": ""},
        {"customer_id": None},
    ],
)
def test_create_invoice_refuses_bad_bodies(
    billing: InProcess, customer: str, change: dict[str, object]
) -> None:
    response = post_invoice(billing, "k1", **change)
    assert response.status_code == 422
    # Refused before executing: the key is free for the corrected request.
    assert post_invoice(billing, "k1").status_code == 201


def test_unknown_customer_is_422_and_not_the_keys_answer(billing: InProcess) -> None:
    refused = post_invoice(billing, "k1", customer_id="c_1007")
    assert refused.status_code == 422
    assert "c_1007" in refused.json()["detail"]
    billing.put("/customers/c_1007", json={"name": "Grace", "email": "grace@example.com"})
    assert post_invoice(billing, "k1", customer_id="c_1007").status_code == 201


def test_repeated_key_replays_and_applies_nothing(billing: InProcess, customer: str) -> None:
    first = post_invoice(billing, "k1")
    again = post_invoice(billing, "k1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert invoice_effects(billing) == {"k1": 1}
    assert len(billing.get("/invoices").json()["items"]) == 1


def test_same_key_with_another_body_is_422(billing: InProcess, customer: str) -> None:
    post_invoice(billing, "k1")
    response = post_invoice(billing, "k1", amount_cents=9999)
    assert response.status_code == 422
    assert invoice_effects(billing) == {"k1": 1}


def test_key_order_in_the_body_does_not_matter(billing: InProcess, customer: str) -> None:
    body = invoice_body()
    post_invoice(billing, "k1")
    reordered = dict(reversed(list(body.items())))
    again = billing.post("/invoices", json=reordered, headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_duplicate_external_id_names_the_existing_invoice(
    billing: InProcess, customer: str
) -> None:
    existing = post_invoice(billing, "k1").json()["id"]
    duplicate = post_invoice(billing, "k2", amount_cents=4200)
    assert duplicate.status_code == 409
    assert duplicate.json() == {
        "detail": "duplicate external_id",
        "existing_id": existing,
        "existing_idempotency_key": "k1",
    }
    assert len(billing.get("/invoices").json()["items"]) == 1


def test_expired_key_leaves_the_natural_key_to_refuse() -> None:
    now = [1000.0]
    state = BillingState(billing_settings(), idempotency_ttl_seconds=60, clock=lambda: now[0])
    billing = InProcess(create_billing_app(state))
    try:
        billing.put("/customers/c_1001", json={"name": "Ada", "email": "ada@example.com"})
        first = post_invoice(billing, "k1").json()
        now[0] += 59
        assert post_invoice(billing, "k1").headers.get("Idempotent-Replayed") == "true"
        now[0] += 1
        expired = post_invoice(billing, "k1")
        assert expired.status_code == 409 and expired.json()["existing_id"] == first["id"]
    finally:
        billing.close()


def test_rate_limited_entity_gets_429_with_retry_after(billing: InProcess) -> None:
    body = {"name": "Bob", "email": "bob@example.com"}
    answers = [billing.put("/customers/c_1002", json=body) for _ in range(3)]
    assert [a.status_code for a in answers] == [429, 429, 201]
    assert answers[0].headers["Retry-After"] == "1"


def test_down_entity_is_always_503(billing: InProcess) -> None:
    body = {"name": "Dan", "email": "dan@example.com"}
    assert {billing.put("/customers/c_down", json=body).status_code for _ in range(5)} == {503}
    assert billing.get("/_stats").json()["effects"] == {}


def test_injected_faults_are_never_a_keys_answer(billing: InProcess, customer: str) -> None:
    billing.post("/_faults", json={"fault_rate": 1.0, "max_faults_per_entity": 3})
    statuses = [post_invoice(billing, "k1").status_code for _ in range(4)]
    assert statuses == [503, 503, 503, 201]
    assert invoice_effects(billing) == {"k1": 1}


def test_lost_response_applies_once_and_the_retry_gets_the_stored_201(
    billing: InProcess, customer: str
) -> None:
    billing.post("/_faults", json={"entities": {"i_2001": "lost_response"}})
    lost = post_invoice(billing, "k1")
    assert lost.status_code == 502
    retry = post_invoice(billing, "k1")
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert invoice_effects(billing) == {"k1": 1}
    assert billing.get("/invoices", params={"external_id": "i_2001"}).json()["items"] == [
        retry.json()
    ]


def test_lost_response_rate_loses_answers_but_not_effects(
    billing: InProcess, customer: str
) -> None:
    billing.post("/_faults", json={"lost_response_rate": 1.0, "max_faults_per_entity": 2})
    statuses = [post_invoice(billing, "k1").status_code for _ in range(3)]
    assert statuses == [502, 502, 201]
    assert invoice_effects(billing) == {"k1": 1}


@pytest.mark.parametrize("record_id", HOSTILE_IDS)
def test_hostile_ids_get_a_clean_404(billing: InProcess, record_id: str) -> None:
    assert billing.get(f"/customers/{quoted(record_id)}").status_code == 404
    listed = billing.get("/customer_writes", params={"customer_id": record_id})
    assert listed.json() == {"items": [], "in_progress": []}
    assert billing.get(f"/invoices/{quoted(record_id)}").status_code == 404
    lookup = billing.get("/invoices", params={"external_id": record_id})
    assert lookup.json() == {"items": []}


def test_hostile_ids_in_bodies_are_stored_verbatim(billing: InProcess) -> None:
    name = "<img src=x onerror=alert(1)>"
    response = billing.put(f"/customers/{quoted(name)}", json={"name": name, "email": "x"})
    assert response.status_code == 201
    assert billing.get(f"/customers/{quoted(name)}").json()["name"] == name
    refused = post_invoice(billing, "k1", customer_id="💥" * 10)
    assert refused.status_code == 422 and "💥" in refused.json()["detail"]
