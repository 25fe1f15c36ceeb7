"""Mock CRM over HTTP (in-process): records, behaviours, hooks, hostile input, correlation."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest
from mock_helpers import HOSTILE_IDS, SLOW_SECONDS, InProcess, quoted

from mocks.crm import CrmState


def test_customers_are_synthetic_and_stable(crm: InProcess) -> None:
    first = crm.get("/customers/c_1001").json()
    assert first == crm.get("/customers/c_1001").json()
    assert set(first) == {"id", "name", "email", "country", "version"}
    assert first["id"] == "c_1001" and first["version"] == 1 and "@" in first["email"]
    assert crm.get("/customers/c_1999").status_code == 200
    assert crm.get("/customers/c_1000").status_code == 404
    assert crm.get("/customers/c_2000").status_code == 404


def test_invoices_belong_to_the_matching_customer(crm: InProcess) -> None:
    invoice = crm.get("/invoices/i_2002").json()
    assert set(invoice) == {
        "id",
        "customer_id",
        "amount_cents",
        "currency",
        "description",
        "version",
    }
    assert invoice["customer_id"] == "c_1002"
    assert isinstance(invoice["amount_cents"], int) and invoice["amount_cents"] > 0
    assert crm.get("/invoices/i_2999").json()["customer_id"] == "c_1999"
    assert crm.get("/invoices/i_3000").status_code == 404


def test_unknown_id_is_a_json_404(crm: InProcess) -> None:
    response = crm.get("/customers/nobody")
    assert response.status_code == 404
    assert response.json() == {"detail": "customer not found"}


@pytest.mark.parametrize("record_id", HOSTILE_IDS)
@pytest.mark.parametrize("kind", ["customers", "invoices"])
def test_hostile_ids_get_a_clean_404(crm: InProcess, kind: str, record_id: str) -> None:
    response = crm.get(f"/{kind}/{quoted(record_id)}")
    assert response.status_code == 404
    assert "detail" in response.json()


def test_flaky_fails_twice_then_answers(crm: InProcess) -> None:
    statuses = [crm.get("/customers/c_flaky").status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_down_is_always_503(crm: InProcess) -> None:
    assert {crm.get("/customers/c_down").status_code for _ in range(6)} == {503}


def test_missing_is_404(crm: InProcess) -> None:
    assert crm.get("/customers/c_missing").status_code == 404


def test_invalid_returns_a_record_that_fails_validation(crm: InProcess) -> None:
    record = crm.get("/customers/c_invalid").json()
    assert record["email"] == "not-an-email" and record["name"] == ""


def test_slow_answers_after_the_client_gave_up(crm: InProcess) -> None:
    async def fetch(timeout: float) -> httpx.Response:
        return await asyncio.wait_for(crm.client.get("/customers/c_slow"), timeout)

    with pytest.raises(TimeoutError):
        crm.run(fetch(SLOW_SECONDS / 3))
    assert crm.run(fetch(SLOW_SECONDS * 10)).status_code == 200


def test_change_hook_bumps_the_version(crm: InProcess) -> None:
    changed = crm.post("/_customers/c_1001", json={"email": "new@example.com"}).json()
    assert changed["version"] == 2 and changed["email"] == "new@example.com"
    assert crm.get("/customers/c_1001").json() == changed
    invoice = crm.post("/_invoices/i_2001", json={"amount_cents": 999}).json()
    assert invoice["version"] == 2 and invoice["amount_cents"] == 999
    # A customer hook cannot reach an invoice, and unknown records stay unknown.
    assert crm.post("/_customers/i_2001", json={}).status_code == 404
    assert crm.post("/_customers/c_1001", json={"version": 9}).status_code == 422
    assert crm.post("/_invoices/i_2001", json={"amount_cents": "9"}).status_code == 422


def test_reset_forgets_changes_and_counts(crm: InProcess) -> None:
    crm.post("/_customers/c_1001", json={"name": "Changed"})
    crm.get("/customers/c_flaky")
    crm.post("/_reset")
    assert crm.get("/customers/c_1001").json()["version"] == 1
    assert crm.get("/customers/c_flaky").status_code == 503  # counting starts again
    assert crm.get("/_stats").json() == {"requests": {"200": 1, "503": 1}, "effects": {}}


def test_stats_count_statuses_but_not_control_routes(crm: InProcess) -> None:
    crm.get("/customers/c_1001")
    crm.get("/customers/c_down")
    crm.get("/customers/nobody")
    crm.get("/_faults")
    assert crm.get("/_stats").json() == {
        "requests": {"200": 1, "404": 1, "503": 1},
        "effects": {},
    }


def test_correlation_id_is_echoed_and_logged(
    crm: InProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mocks.crm"):
        response = crm.get("/customers/c_down", headers={"X-Correlation-ID": "corr-123"})
    assert response.headers["X-Correlation-ID"] == "corr-123"
    (line,) = [r for r in caplog.records if r.name == "mocks.crm"]
    assert line.fields == {  # type: ignore[attr-defined]
        "server": "crm",
        "method": "GET",
        "path": "/customers/c_down",
        "status": 503,
        "correlation_id": "corr-123",
        "duration_ms": line.fields["duration_ms"],  # type: ignore[attr-defined]
        "fault": "unavailable",
    }


def test_a_correlation_id_is_made_up_when_missing(crm: InProcess) -> None:
    assert crm.get("/customers/c_1001").headers["X-Correlation-ID"]


def test_latency_is_added_to_every_call(crm: InProcess, crm_state: CrmState) -> None:
    crm.post("/_faults", json={"latency_ms": 400})

    async def fetch() -> httpx.Response:
        return await asyncio.wait_for(crm.client.get("/customers/c_1001"), 0.1)

    with pytest.raises(TimeoutError):
        crm.run(fetch())
    assert crm_state.faults.settings.latency_ms == 400
