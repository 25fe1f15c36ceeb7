"""Fixtures for the mock upstreams, mounted in-process (no sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mock_helpers import SETUP_KEY, InProcess, billing_settings, crm_settings

from mocks.billing import BillingState, create_billing_app
from mocks.crm import CrmState, create_crm_app


@pytest.fixture
def crm_state() -> CrmState:
    return CrmState(crm_settings())


@pytest.fixture
def billing_state() -> BillingState:
    return BillingState(billing_settings())


@pytest.fixture
def crm(crm_state: CrmState) -> Iterator[InProcess]:
    client = InProcess(create_crm_app(crm_state))
    yield client
    client.close()


@pytest.fixture
def billing(billing_state: BillingState) -> Iterator[InProcess]:
    client = InProcess(create_billing_app(billing_state))
    yield client
    client.close()


@pytest.fixture
def customer(billing: InProcess) -> str:
    """A customer that exists in Billing, so invoices for it can be created."""
    body = {"name": "Ada", "email": "ada@example.com"}
    response = billing.put("/customers/c_1001", json=body, headers={"Idempotency-Key": SETUP_KEY})
    assert response.status_code == 201
    return "c_1001"
