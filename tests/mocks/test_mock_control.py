"""The control routes both mocks share: /_faults, /_stats, /_reset."""

from __future__ import annotations

import pytest
from mock_helpers import InProcess


@pytest.fixture(params=["crm", "billing"])
def app(request: pytest.FixtureRequest) -> InProcess:
    client: InProcess = request.getfixturevalue(request.param)
    return client


def test_get_faults_shows_the_whole_configuration(crm: InProcess, billing: InProcess) -> None:
    crm_faults = crm.get("/_faults").json()
    assert crm_faults["fault_rate"] == 0.0 and crm_faults["latency_ms"] == 0
    assert crm_faults["entities"] == {
        "c_down": "down",
        "c_flaky": "flaky",
        "c_invalid": "invalid",
        "c_missing": "missing",
        "c_slow": "slow",
    }
    assert billing.get("/_faults").json()["entities"] == {
        "c_1002": "rate_limited",
        "c_down": "down",
    }


def test_post_faults_changes_only_what_it_names(app: InProcess) -> None:
    before = app.get("/_faults").json()
    change = {"fault_rate": 0.5, "max_faults_per_entity": 0, "entities": {"c_down": "ok"}}
    after = app.post("/_faults", json=change).json()
    assert after["fault_rate"] == 0.5 and after["max_faults_per_entity"] == 0
    assert after["latency_ms"] == before["latency_ms"]
    assert after["entities"] == {**before["entities"], "c_down": "ok"}
    assert app.get("/_faults").json() == after
    assert app.get("/customers/c_down").status_code != 503


@pytest.mark.parametrize(
    "body",
    [
        {"entities": {"c_1001": "sometimes"}},
        {"fault_rate": 1.5},
        {"fault_rate": -0.1},
        {"fault_rate": "lots"},
        {"latency_ms": -1},
        {"max_faults_per_entity": 1.5},
        {"fautl_rate": 0.1},
        {"entities": ["c_down"]},
    ],
)
def test_post_faults_refuses_bad_values_with_422(app: InProcess, body: object) -> None:
    before = app.get("/_faults").json()
    response = app.post("/_faults", json=body)
    assert response.status_code == 422
    assert app.get("/_faults").json() == before


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{", 400),
        (b'{"fault_rate": NaN}', 400),
        (b'{"fault_rate": 1e400}', 400),
        (b"\xff\xfe", 400),
        (b"[" * 100_000, 400),
        (b"[1, 2]", 422),
        (b"", 400),
    ],
)
def test_malformed_bodies_get_4xx(app: InProcess, content: bytes, status: int) -> None:
    response = app.post("/_faults", content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status


def test_reset_restores_the_starting_faults(app: InProcess) -> None:
    before = app.get("/_faults").json()
    app.post("/_faults", json={"fault_rate": 1.0, "seed": 9})
    assert app.post("/_reset").status_code == 200
    assert app.get("/_faults").json() == before
    assert app.get("/_stats").json() == {"requests": {}, "effects": {}}
