"""The route label of ``syncbridge_api_requests_total`` names the route template, also for
requests the middleware refused before routing (a wrong token, a throttled address): those are
what an operator watches for an attack (FM_030's detection)."""

from __future__ import annotations

import httpx
import pytest

from syncbridge.api.throttle import MAX_FAILED_LOGINS
from syncbridge.metrics import process_metrics
from tests.api.support import AUTH


def count(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    found = process_metrics().registry.get_sample_value("syncbridge_api_requests_total", labels)
    return found or 0.0


@pytest.mark.parametrize(
    ("method", "path", "headers", "route", "status"),
    [
        ("POST", "/api/jobs/noop", {"Authorization": "Bearer wrong"}, "/api/jobs/{job_type}", 401),
        ("POST", "/api/jobs/7/replay", {}, "/api/jobs/{job_id}/replay", 401),
        ("POST", "/api/jobs/noop", AUTH, "/api/jobs/{job_type}", 201),
        ("GET", "/api/jobs/7", {}, "/api/jobs/{job_id}", 404),
        ("GET", "/openapi.json", {}, "/openapi.json", 200),
        ("GET", "/no/such/thing", {}, "unmatched", 404),
    ],
)
def test_each_request_is_counted_under_its_route_template(
    client: httpx.Client, method: str, path: str, headers: dict[str, str], route: str, status: int
) -> None:
    before = count(method, route, status)
    response = client.request(method, path, headers=headers, json={"entity_id": "e"})
    assert response.status_code == status
    assert count(method, route, status) == before + 1


def test_a_throttled_request_is_counted_under_its_route(client: httpx.Client) -> None:
    wrong = {"Authorization": "Bearer wrong"}
    for _ in range(MAX_FAILED_LOGINS):
        assert client.post("/api/jobs/noop", headers=wrong, json={}).status_code == 401
    before = count("POST", "/api/jobs/{job_id}/cancel", 429)
    assert client.post("/api/jobs/3/cancel", headers=AUTH).status_code == 429
    assert count("POST", "/api/jobs/{job_id}/cancel", 429) == before + 1
