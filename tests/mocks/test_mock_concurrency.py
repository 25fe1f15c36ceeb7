"""Many concurrent requests on one event loop: an effect is applied once, whatever the race."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
from mock_helpers import InProcess, invoice_body, invoice_effects

from mocks.billing import BillingState

CONCURRENT = 50


async def post_many(
    billing: InProcess, keys: list[str], body: dict[str, object]
) -> list[httpx.Response]:
    async def post(key: str) -> httpx.Response:
        return await billing.client.post("/invoices", json=body, headers={"Idempotency-Key": key})

    return list(await asyncio.gather(*(post(key) for key in keys)))


def test_fifty_posts_with_one_key_apply_once(billing: InProcess, customer: str) -> None:
    responses = billing.run(post_many(billing, ["k1"] * CONCURRENT, invoice_body()))

    created = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    for r in responses:
        assert r.status_code == 201 or r.json() == {"detail": "request in progress"}
    assert invoice_effects(billing) == {"k1": 1}
    assert len(billing.get("/invoices").json()["items"]) == 1


def test_while_the_first_runs_the_others_are_told_in_progress(
    billing: InProcess, billing_state: BillingState, customer: str
) -> None:
    # A slow upstream keeps the key reserved while it works: every duplicate races it.
    billing.post("/_faults", json={"entities": {"i_2001": "slow"}})
    responses = billing.run(post_many(billing, ["k1"] * CONCURRENT, invoice_body()))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: CONCURRENT - 1}
    assert {r.json()["detail"] for r in responses if r.status_code == 409} == {
        "request in progress"
    }
    assert invoice_effects(billing) == {"k1": 1}
    # Once it has finished, the key replays its answer.
    again = billing.post("/invoices", json=invoice_body(), headers={"Idempotency-Key": "k1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"


def test_fifty_keys_for_one_external_id_create_one_invoice(
    billing: InProcess, customer: str
) -> None:
    keys = [f"k{n}" for n in range(CONCURRENT)]
    responses = billing.run(post_many(billing, keys, invoice_body()))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 1, 409: CONCURRENT - 1}
    (winner,) = [r.json()["id"] for r in responses if r.status_code == 201]
    assert {r.json()["existing_id"] for r in responses if r.status_code == 409} == {winner}
    assert sum(invoice_effects(billing).values()) == 1
