"""The JSON API on SQLite and PostgreSQL: status codes, filters, pagination, the job model shared
with ``syncbridge jobs show --json``, and the operator actions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anyio
import httpx
import pytest
from fastapi import FastAPI

from syncbridge.api.middleware import MAX_BODY_BYTES
from syncbridge.db.queries import Store
from syncbridge.jobtypes import AppliedEffect
from syncbridge.models import EnqueueRequest
from syncbridge.services import Services
from tests.api.support import AUTH, dead_job, enqueue, failed_job, snapshot, succeeded_job


def test_enqueue_is_201_then_200_for_the_active_duplicate(client: httpx.Client) -> None:
    body = {"entity_id": "c_1001", "payload": {"force": True}}
    first = client.post("/api/jobs/noop", json=body, headers=AUTH)
    assert first.status_code == 201, first.text
    assert first.json()["deduplicated"] is False
    assert first.json()["state"] == "pending" and first.json()["payload"] == {"force": True}
    again = client.post("/api/jobs/noop", json=body, headers=AUTH)
    assert again.status_code == 200
    assert again.json()["deduplicated"] is True and again.json()["id"] == first.json()["id"]


def test_enqueue_takes_every_documented_field(client: httpx.Client) -> None:
    body = {
        "entity_id": "c_1002",
        "payload": {},
        "idempotency_key": "order-7",
        "max_retries": 5,
        "run_at": "2031-01-01T12:00:00+02:00",
    }
    job = client.post("/api/jobs/noop", json=body, headers=AUTH).json()
    assert job["idempotency_key"] == "order-7" and job["max_retries"] == 5
    assert job["next_run_at"] == "2031-01-01T10:00:00+00:00"
    replayed = client.post("/api/jobs/noop", json=body, headers=AUTH)
    assert replayed.status_code == 200 and replayed.json()["id"] == job["id"]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"entity_id": ""},
        {"entity_id": "x" * 256},
        {"entity_id": "bad\x00id"},
        {"entity_id": "c_1", "payload": [1, 2]},
        {"entity_id": "c_1", "max_retries": -1},
        {"entity_id": "c_1", "max_retries": 1001},
        {"entity_id": "c_1", "run_at": "2031-01-01T12:00:00"},
        {"entity_id": "c_1", "surprise": 1},
        {"entity_id": 42},
        {"entity_id": "c_1", "max_retries": True},
        {"entity_id": "c_1", "max_retries": "3"},
        {"entity_id": "c_1", "run_at": 1893456000},
    ],
)
def test_invalid_bodies_are_422_and_store_nothing(
    client: httpx.Client, store: Store, body: dict[str, object]
) -> None:
    response = client.post("/api/jobs/noop", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("invalid request")
    assert snapshot(store) == []


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"entity_id": "abc\u202etxt.exe"}, "invisible formatting characters (U+202E)"),
        ({"entity_id": "c_10\u200b01"}, "invisible formatting characters (U+200B)"),
        ({"entity_id": "c_1", "idempotency_key": "k\u2028x"}, "(U+2028)"),
        ({"entity_id": "c_1", "payload": {"blob": "x" * 1_048_576}}, "the limit is 1,048,576"),
        ({"entity_id": "c_1", "payload": {"a": "\ud800"}}, "lone surrogate"),
    ],
)
def test_text_the_services_refuse_is_422_and_stores_nothing(
    client: httpx.Client, store: Store, body: dict[str, object], detail: str
) -> None:
    # json.dumps escapes everything outside ASCII, so a lone surrogate travels as "\ud800".
    headers = AUTH | {"content-type": "application/json"}
    response = client.post("/api/jobs/noop", content=json.dumps(body), headers=headers)
    assert response.status_code == 422, response.text
    assert detail in response.json()["detail"]
    assert snapshot(store) == []


def test_unknown_job_type_is_404_and_bad_json_422(client: httpx.Client, store: Store) -> None:
    unknown = client.post("/api/jobs/nosuch", json={"entity_id": "c_1"}, headers=AUTH)
    assert unknown.status_code == 404 and "unknown job type" in unknown.json()["detail"]
    broken = client.post(
        "/api/jobs/noop",
        content=b'{"entity_id": ',
        headers=AUTH | {"content-type": "application/json"},
    )
    assert broken.status_code == 422
    assert snapshot(store) == []


def test_list_filters_by_state_type_and_entity(client: httpx.Client, store: Store) -> None:
    dead = dead_job(store, "c_dead")
    failed = failed_job(store, "c_failed")
    pending = enqueue(store, "c_pending")
    by_state = client.get("/api/jobs", params={"state": "dead"}).json()
    assert [j["id"] for j in by_state["items"]] == [dead.id]
    by_entity = client.get("/api/jobs", params={"entity_id": "c_failed"}).json()
    assert [j["id"] for j in by_entity["items"]] == [failed.id]
    by_type = client.get("/api/jobs", params={"job_type": "noop"}).json()
    assert [j["id"] for j in by_type["items"]] == [pending.id, failed.id, dead.id]
    assert client.get("/api/jobs", params={"job_type": "other"}).json()["items"] == []
    assert client.get("/api/jobs", params={"state": "sleeping"}).status_code == 422


def test_pages_follow_the_cursor_to_the_end(client: httpx.Client, store: Store) -> None:
    ids = [enqueue(store, f"c_{n}").id for n in range(7)]
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params: dict[str, int] = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/jobs", params=params).json()
        seen += [job["id"] for job in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert client.get("/api/jobs", params={"limit": 0}).status_code == 422


def test_detail_is_the_cli_model(client: httpx.Client, store: Store, services: Services) -> None:
    dead = dead_job(store, "c_1003")
    response = client.get(f"/api/jobs/{dead.id}")
    assert response.status_code == 200
    # The same document as `syncbridge jobs show --json` prints (services.job_detail).
    assert response.json() == services.job_detail(dead.id)
    detail = response.json()
    assert detail["attempts"][0]["error_class"] == "UpstreamUnavailable"
    assert detail["attempts"][0]["http_status"] == 503
    assert detail["attempts"][0]["duration_ms"] == 250.0
    assert detail["last_error"]["class"] == "UpstreamUnavailable"
    assert detail["lineage"] == {"replays": [], "replayed_by": []}
    assert detail["reconcile"] is None  # never asked about
    assert detail["effects"] == []  # a dead job filed none


def test_detail_lists_every_effect_the_job_filed(
    client: httpx.Client, store: Store, services: Services
) -> None:
    invoice = AppliedEffect("crm-invoice-i_2001", "billing", "inv_000001")
    customer = AppliedEffect("crm-customer-c_1001", "billing", None)
    done = succeeded_job(store, "i_2001", (invoice, customer))
    detail = client.get(f"/api/jobs/{done.id}").json()
    assert detail == services.job_detail(done.id)
    applied_at = store.ledger_rows(job_id=done.id)[0]["applied_at"].isoformat()
    assert detail["effects"] == [
        {
            "effect_key": invoice.effect_key,
            "upstream": "billing",
            "upstream_ref": "inv_000001",
            "applied_at": applied_at,
        },
        {
            "effect_key": customer.effect_key,
            "upstream": "billing",
            "upstream_ref": None,
            "applied_at": applied_at,
        },
    ]


def test_detail_shows_when_reconcile_asks_again(
    client: httpx.Client, store: Store, services: Services
) -> None:
    dead = dead_job(store, "c_1013")
    asked = store.ask_again_later(dead.id, "UpstreamUnavailable: billing -> 503", lambda n: 45.0)
    assert asked is not None
    detail = client.get(f"/api/jobs/{dead.id}").json()
    assert detail == services.job_detail(dead.id)
    assert detail["reconcile"] == {
        "asks": 1,
        "next_ask_at": asked.next_ask_at.isoformat(),
        "last_error": "UpstreamUnavailable: billing -> 503",
    }
    assert detail["effect_status"] is None


def test_unknown_and_malformed_ids(client: httpx.Client) -> None:
    assert client.get("/api/jobs/999999").status_code == 404
    assert client.get("/api/jobs/999999").json()["detail"] == "no job with id 999999"
    assert client.get("/api/jobs/0").status_code == 422
    for action in ("cancel", "retry", "replay"):
        assert client.post(f"/api/jobs/999999/{action}", headers=AUTH).status_code == 404


def test_cancel_pending_then_409(client: httpx.Client, store: Store) -> None:
    job = enqueue(store, "c_1004")
    cancelled = client.post(f"/api/jobs/{job.id}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    before = snapshot(store)
    again = client.post(f"/api/jobs/{job.id}/cancel", headers=AUTH)
    assert again.status_code == 409 and "only pending or running" in again.json()["detail"]
    assert snapshot(store) == before


def test_an_operators_answer_for_an_unknown_effect(
    client: httpx.Client, store: Store, services: Services
) -> None:
    """``POST /api/jobs/{id}/effect``: the answer ``reconcile --answer`` records; refused
    without the token, for a job whose effect is known, twice, or with a bad body, and then
    nothing changes."""
    dead = dead_job(store, "c_1021")  # its one attempt ended with a retryable error: unknown
    assert store.ask_again_later(dead.id, "UpstreamUnavailable: 503", lambda n: 60.0)
    failed = failed_job(store, "c_1022")  # a terminal refusal: known not applied
    before = snapshot(store), services.job_detail(dead.id)
    refused = {
        "no token": (dead.id, {"effect_status": "applied"}, {}, 401),
        "known outcome": (failed.id, {"effect_status": "applied"}, AUTH, 409),
        "unknown job": (999_999, {"effect_status": "applied"}, AUTH, 404),
        "bad status": (dead.id, {"effect_status": "maybe"}, AUTH, 422),
        "extra field": (dead.id, {"effect_status": "applied", "by": "me"}, AUTH, 422),
        "no body": (dead.id, None, AUTH, 422),
    }
    for name, (job_id, body, headers, status) in refused.items():
        response = client.post(f"/api/jobs/{job_id}/effect", json=body, headers=headers)
        assert response.status_code == status, (name, response.text)
    assert (snapshot(store), services.job_detail(dead.id)) == before
    answered = client.post(
        f"/api/jobs/{dead.id}/effect", json={"effect_status": "not_applied"}, headers=AUTH
    )
    assert answered.status_code == 200, answered.text
    assert answered.json()["effect_status"] == "not_applied"
    detail = client.get(f"/api/jobs/{dead.id}").json()
    assert detail["reconcile"] is None and detail["state"] == "dead"  # asking ended; state kept
    again = client.post(
        f"/api/jobs/{dead.id}/effect", json={"effect_status": "applied"}, headers=AUTH
    )
    assert again.status_code == 409 and "answered already" in again.json()["detail"]
    assert store.get_job(dead.id).effect_status == "not_applied"


def test_retry_failed_but_not_dead(client: httpx.Client, store: Store) -> None:
    failed = failed_job(store, "c_1005")
    dead = dead_job(store, "c_1006")
    retried = client.post(f"/api/jobs/{failed.id}/retry", headers=AUTH)
    assert retried.status_code == 200 and retried.json()["state"] == "pending"
    refused = client.post(f"/api/jobs/{dead.id}/retry", headers=AUTH)
    assert refused.status_code == 409 and "replay it instead" in refused.json()["detail"]
    assert store.get_job(dead.id).state == "dead"


def test_replay_links_both_ways(client: httpx.Client, store: Store) -> None:
    dead = dead_job(store, "c_1007")
    dry = client.post(f"/api/jobs/{dead.id}/replay", params={"dry_run": "true"}, headers=AUTH)
    assert dry.status_code == 200 and dry.json()["new_job_id"] is None
    assert len(snapshot(store)) == 1
    replayed = client.post(f"/api/jobs/{dead.id}/replay", headers=AUTH)
    assert replayed.status_code == 201, replayed.text
    new_id = replayed.json()["new_job_id"]
    assert replayed.json()["job"]["replay_of_job_id"] == dead.id
    assert client.get(f"/api/jobs/{dead.id}").json()["lineage"]["replayed_by"] == [new_id]
    assert client.get(f"/api/jobs/{new_id}").json()["lineage"]["replays"] == [dead.id]
    assert client.get(f"/api/jobs/{dead.id}").json()["state"] == "dead"
    # The entity now has an active job: a second replay is refused, naming it.
    again = client.post(f"/api/jobs/{dead.id}/replay", headers=AUTH)
    assert again.status_code == 409 and str(new_id) in again.json()["detail"]
    pending = client.post(f"/api/jobs/{new_id}/replay", headers=AUTH)
    assert pending.status_code == 409


def test_dlq_lists_dead_jobs_and_replays_them_all(client: httpx.Client, store: Store) -> None:
    first, second = dead_job(store, "c_a"), dead_job(store, "c_b")
    failed_job(store, "c_c")
    succeeded_job(store, "c_d")
    dlq = client.get("/api/dlq").json()
    assert [j["id"] for j in dlq["items"]] == [second.id, first.id]
    assert client.get("/api/dlq", params={"job_type": "other"}).json()["items"] == []
    dry = client.post("/api/dlq/replay", json={"dry_run": True}, headers=AUTH).json()
    assert [i["new_job_id"] for i in dry["items"]] == [None, None]
    done = client.post(
        "/api/dlq/replay", json={"error_class": "UpstreamUnavailable"}, headers=AUTH
    ).json()
    assert [i["replayed_job_id"] for i in done["items"]] == [first.id, second.id]
    assert all(i["new_job_id"] and i["refused"] is None for i in done["items"])


def test_health_ready_and_metrics(client: httpx.Client, store: Store) -> None:
    succeeded_job(store, "c_ok")
    dead_job(store, "c_dead")
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}
    client.get("/api/jobs/424242")
    summary = client.get("/api/metrics").json()
    for key in ("total", "finished", "success_rate", "retries", "avg_attempt_duration_ms"):
        assert key in summary
    assert summary["total"] == 2 and summary["finished"] == 2 and summary["success_rate"] == 0.5
    assert summary["dlq_size"] == 1 and summary["queue_depth"]["dead"] == 1
    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain")
    assert "syncbridge_" in scrape.text
    # Requests are labelled by route template, never by the raw path with its id.
    assert 'route="/api/jobs/{job_id}"' in scrape.text
    assert "424242" not in scrape.text


def test_openapi_and_docs(client: httpx.Client) -> None:
    schema = client.get("/openapi.json").json()
    enqueue_op = schema["paths"]["/api/jobs/{job_type}"]["post"]
    assert enqueue_op["security"] and {"200", "201", "401", "422"} <= set(enqueue_op["responses"])
    assert "security" not in schema["paths"]["/api/jobs"]["get"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/api/jobs/{job_id}/replay" in docs.text


def test_a_stored_lone_surrogate_is_served_escaped_not_as_a_500(
    client: httpx.Client, store: Store
) -> None:
    # The Python API stores a payload as given (INV_013), lone surrogate included; the
    # operator ways in refuse one. Reading such a job back must work everywhere.
    job = store.enqueue(EnqueueRequest("noop", "surrogate", {"a": "x\ud800y"}, 3)).job
    one = client.get(f"/api/jobs/{job.id}")
    assert one.status_code == 200
    assert json.loads(one.content)["payload"] == {"a": "x\ud800y"}  # exact, as a JSON escape
    listed = client.get("/api/jobs")
    assert listed.status_code == 200
    assert json.loads(listed.content)["items"][0]["payload"] == {"a": "x\ud800y"}
    page = client.get(f"/ui/jobs/{job.id}")
    assert page.status_code == 200 and "x\\ud800y" in page.text


def _post_in_chunks(app: FastAPI, total: int) -> httpx.Response:
    """POST a body of about ``total`` bytes in 1 MiB chunks, with no Content-Length."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"entity_id": "c_1", "payload": {"blob": "'
        for start in range(0, total, 1 << 20):
            yield b"x" * min(1 << 20, total - start)
        yield b'"}}'

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            headers = AUTH | {"content-type": "application/json"}
            return await c.post("/api/jobs/noop", content=chunks(), headers=headers)

    return anyio.run(post)


def test_a_body_over_the_limit_is_413_read_or_not_and_stores_nothing(
    app: FastAPI, client: httpx.Client, browser: httpx.Client, store: Store
) -> None:
    headers = AUTH | {"content-type": "application/json"}
    declared = client.post(
        "/api/jobs/noop", content=b"x" * (MAX_BODY_BYTES + 1), headers=headers
    )  # refused by its Content-Length, before a byte of it is read
    assert declared.status_code == 413 and "request body over" in declared.json()["detail"]
    streamed = _post_in_chunks(app, MAX_BODY_BYTES)
    assert streamed.status_code == 413 and "request body over" in streamed.json()["detail"]
    form = {"csrf_token": "x", "job_type": "noop", "entity_id": "c_1"}
    page = browser.post("/ui/jobs", data=form | {"payload": "x" * (MAX_BODY_BYTES + 1)})
    assert page.status_code == 413
    assert snapshot(store) == []
    # Under the limit the body is read and judged on its content: the payload's own limit
    # (1 MiB of JSON) refuses this one with 422.
    under = _post_in_chunks(app, 2 << 20)
    assert under.status_code == 422 and "the limit is 1,048,576" in under.json()["detail"]


@pytest.mark.parametrize(
    "path",
    ["/api/jobs?stat=dead", "/api/jobs?limit=5&=null", "/api/metrics?x=1", "/api/dlq?job=noop"],
)
def test_unknown_query_parameters_are_refused(client: httpx.Client, path: str) -> None:
    """A misspelt filter must not answer for every job: 422, naming the parameter."""
    response = client.get(path)
    assert response.status_code == 422, response.text
    assert "unknown query parameter" in response.json()["detail"]


def test_an_action_with_an_unknown_query_parameter_changes_nothing(
    client: httpx.Client, store: Store
) -> None:
    dead = dead_job(store, "c_1014")
    refused = client.post(f"/api/jobs/{dead.id}/replay?dry_run=false&dryrun=true", headers=AUTH)
    assert refused.status_code == 422
    assert store.get_job(dead.id).state.value == "dead"
    assert client.get(f"/api/jobs/{dead.id}").json()["lineage"]["replayed_by"] == []
