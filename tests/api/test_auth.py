"""Every mutating call needs the bearer token (401 otherwise, and nothing changes); reads are
open; every response carries a correlation id, which an enqueue adopts."""

from __future__ import annotations

import httpx
import pytest

from syncbridge.db.queries import Store
from tests.api.support import AUTH, TOKEN, dead_job, enqueue, failed_job, snapshot

WRONG = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Bearer {TOKEN}x"},
    {"Authorization": f"Basic {TOKEN}"},
    {"Authorization": TOKEN},
    {"Authorization": "Bearer "},
]


@pytest.mark.parametrize(
    "headers", WRONG, ids=["none", "wrong", "longer", "basic", "bare", "empty"]
)
def test_mutations_without_the_token_are_401_and_change_nothing(
    client: httpx.Client, store: Store, headers: dict[str, str]
) -> None:
    pending, failed, dead = enqueue(store, "c_1"), failed_job(store, "c_2"), dead_job(store, "c_3")
    before = snapshot(store)
    calls = [
        ("/api/jobs/noop", {"entity_id": "c_new"}),
        (f"/api/jobs/{pending.id}/cancel", None),
        (f"/api/jobs/{failed.id}/retry", None),
        (f"/api/jobs/{dead.id}/replay", None),
        ("/api/dlq/replay", {}),
    ]
    for path, body in calls:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "x-correlation-id" in response.headers
    # A body that is not even JSON is still refused for want of the token, not parsed.
    garbage = client.post(
        "/api/jobs/noop", content=b"{", headers=headers | {"content-type": "application/json"}
    )
    assert garbage.status_code == 401
    assert snapshot(store) == before


def test_reads_need_no_token(client: httpx.Client, store: Store) -> None:
    job = enqueue(store, "c_1")
    for path in ("/api/jobs", f"/api/jobs/{job.id}", "/api/dlq", "/api/metrics", "/metrics"):
        assert client.get(path).status_code == 200, path


def test_the_right_token_works_in_any_scheme_case(client: httpx.Client, store: Store) -> None:
    job = enqueue(store, "c_1")
    response = client.post(
        f"/api/jobs/{job.id}/cancel", headers={"Authorization": f"bearer {TOKEN}"}
    )
    assert response.status_code == 200


def test_correlation_id_is_echoed_and_adopted_by_enqueue(client: httpx.Client) -> None:
    response = client.post(
        "/api/jobs/noop",
        json={"entity_id": "c_9"},
        headers=AUTH | {"X-Correlation-ID": "trace-42.a:b"},
    )
    assert response.headers["x-correlation-id"] == "trace-42.a:b"
    assert response.json()["correlation_id"] == "trace-42.a:b"


@pytest.mark.parametrize("sent", ["has spaces", "x" * 129, "<script>", "-leading-dash", ""])
def test_unusable_correlation_ids_are_replaced(client: httpx.Client, sent: str) -> None:
    response = client.get("/api/jobs", headers={"X-Correlation-ID": sent})
    echoed = response.headers["x-correlation-id"]
    assert echoed != sent and len(echoed) == 32


def test_every_response_carries_a_correlation_id(client: httpx.Client) -> None:
    seen = set()
    for path in ("/health", "/api/jobs/1", "/api/jobs/0", "/nowhere", "/ui/", "/static/app.css"):
        response = client.get(path)
        seen.add(response.headers["x-correlation-id"])
        assert "script-src 'self'" in response.headers["content-security-policy"]
    assert len(seen) == 6
