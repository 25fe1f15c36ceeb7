"""The ``customer`` and ``invoice`` plugins' handlers, called directly with a ``JobContext`` built
here, against respx-mocked CRM and Billing mounted through the injected transports.

What they promise: the effect they applied is returned (the engine records it), a bad record
fails naming the field, every Billing write carries an ``Idempotency-Key`` that is the same for
every attempt of a lineage sending the same body, and a "duplicate external_id" means applied.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any

import httpx
import pytest
import respx
import structlog
from structlog.testing import capture_logs
from syncbridge_customer import reconcile_customer, sync_customer
from syncbridge_invoice import reconcile_invoice, sync_invoice

from syncbridge.config import Settings
from syncbridge.errors import (
    NotFound,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationError,
)
from syncbridge.executor import classify
from syncbridge.jobtypes import AppliedEffect, JobContext, Success, effect_key
from syncbridge.plugins import load_registry
from syncbridge.upstream import UpstreamClient, build_upstreams, close_upstreams

CRM = "http://crm.test"
BILLING = "http://billing.test"
CUSTOMER = {
    "id": "c_1001",
    "name": "Ada Lovelace",
    "email": "ada.lovelace@example.com",
    "country": "GB",
    "version": 1,
}
INVOICE = {
    "id": "i_2001",
    "customer_id": "c_1001",
    "amount_cents": 1200,
    "currency": "EUR",
    "description": "Subscription",
    "version": 1,
}
CUSTOMER_BODY = {
    "name": "Ada Lovelace",
    "email": "ada.lovelace@example.com",
    "country": "GB",
    "version": 1,
}
INVOICE_BODY = {
    "external_id": "i_2001",
    "customer_id": "c_1001",
    "amount_cents": 1200,
    "currency": "EUR",
    "description": "Subscription",
}


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(assert_all_mocked=True)


@pytest.fixture
def upstreams(router: respx.Router) -> Iterator[dict[str, UpstreamClient]]:
    transport = httpx.MockTransport(router.handler)
    settings = Settings(crm_url=CRM, billing_url=BILLING, upstream_timeout_seconds=1.0)
    clients = build_upstreams(settings, {"crm": transport, "billing": transport})
    yield clients
    close_upstreams(clients)


def context(
    upstreams: dict[str, UpstreamClient],
    entity_id: str,
    *,
    job_type: str = "customer",
    job_id: int = 1,
    attempt: int = 1,
    lineage_id: int = 1,
) -> JobContext:
    return JobContext(
        job_id=job_id,
        job_type=job_type,
        entity_id=entity_id,
        payload={},
        attempt=attempt,
        correlation_id=f"corr-{job_id}-{attempt}",
        lineage_id=lineage_id,
        worker_id="w-test",
        deadline=datetime(2030, 1, 1, 0, 1, tzinfo=UTC),
        log=structlog.get_logger(),
        upstreams=upstreams,
    )


def sent_json(call: Any) -> Any:
    return json.loads(call.request.read())


# --- discovery ---------------------------------------------------------------------------------


def test_both_plugins_are_found_through_the_entry_point_group_like_any_third_party() -> None:
    published = {ep.name: ep.value for ep in entry_points(group="syncbridge")}
    assert published["customer"] == "syncbridge_customer"
    assert published["invoice"] == "syncbridge_invoice"
    registry = load_registry(only=["customer", "invoice"])
    assert registry.plugins == {"customer": ["customer"], "invoice": ["invoice"]}
    assert registry.get("customer").handler is sync_customer
    assert registry.get("invoice").handler is sync_invoice
    assert registry.get("invoice").reconcile is reconcile_invoice
    assert registry.get("customer").reconcile is reconcile_customer


# --- customer ----------------------------------------------------------------------------------


def test_customer_upserts_into_billing_and_returns_the_effect(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    read = router.get(f"{CRM}/customers/c_1001").respond(200, json=CUSTOMER)
    put = router.put(f"{BILLING}/customers/c_1001").respond(201, json={"id": "c_1001"})
    ctx = context(upstreams, "c_1001")
    result = sync_customer(ctx)
    key = ctx.effect_key("upsert_customer", {"id": "c_1001", **CUSTOMER_BODY})
    assert result == Success(effect=AppliedEffect(key, "billing", "c_1001"))
    request = put.calls.last.request
    assert sent_json(put.calls.last) == CUSTOMER_BODY
    assert request.headers["Idempotency-Key"] == key
    assert request.headers["X-Correlation-ID"] == "corr-1-1"
    assert read.calls.last.request.headers["X-Correlation-ID"] == "corr-1-1"
    assert "Idempotency-Key" not in read.calls.last.request.headers  # reads carry no key


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"email": "ada@@example.com"}, "email"),
        ({"email": "ada@example@com.org"}, "email"),
        ({"email": "ada@localhost"}, "email"),
        ({"email": "ada@.com"}, "email"),
        ({"email": "ada@example."}, "email"),
        ({"email": "ada lovelace@example.com"}, "email"),
        ({"email": None}, "email"),
        ({"email": 42}, "email"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"name": ["Ada"]}, "name"),
        ({"id": "c_9999"}, "id"),
        ({"country": 44}, "country"),
        ({"version": "one"}, "version"),
    ],
)
def test_a_bad_customer_record_fails_naming_the_field_and_writes_nothing(
    router: respx.Router,
    upstreams: dict[str, UpstreamClient],
    patch: dict[str, Any],
    field: str,
) -> None:
    router.get(f"{CRM}/customers/c_1001").respond(200, json=CUSTOMER | patch)
    put = router.put(f"{BILLING}/customers/c_1001").respond(200, json={})
    with pytest.raises(ValidationError) as caught:
        sync_customer(context(upstreams, "c_1001"))
    assert caught.value.field == field and not caught.value.retryable
    assert f"field {field!r}" in str(caught.value) and "c_1001" in str(caught.value)
    assert not put.called


def test_a_customer_missing_from_the_crm_is_not_found(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    router.get(f"{CRM}/customers/c_missing").respond(404, json={"detail": "customer not found"})
    with pytest.raises(NotFound, match=r"crm GET /customers/c_missing -> 404"):
        sync_customer(context(upstreams, "c_missing"))


def test_a_rate_limited_billing_write_carries_retry_after(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    router.get(f"{CRM}/customers/c_1002").respond(200, json=CUSTOMER | {"id": "c_1002"})
    router.put(f"{BILLING}/customers/c_1002").respond(429, headers={"Retry-After": "5"})
    with pytest.raises(UpstreamRateLimited) as caught:
        sync_customer(context(upstreams, "c_1002"))
    assert caught.value.retry_after == 5.0


def test_a_customer_job_stops_between_calls_when_asked(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    ctx = context(upstreams, "c_1001")

    def cancel_while_reading(request: httpx.Request) -> httpx.Response:
        ctx.request_stop("cancelled by operator")
        return httpx.Response(200, json=CUSTOMER)

    router.get(f"{CRM}/customers/c_1001").mock(side_effect=cancel_while_reading)
    put = router.put(f"{BILLING}/customers/c_1001").respond(200, json={})
    with pytest.raises(UpstreamUnavailable, match=r"stopped before PUT.*cancelled by operator"):
        sync_customer(ctx)
    assert not put.called


@pytest.mark.parametrize("hostile", ["../admin", "a/b", "<img src=x onerror=alert(1)>", "客户"])
def test_a_hostile_customer_id_stays_in_its_segment(
    router: respx.Router, upstreams: dict[str, UpstreamClient], hostile: str
) -> None:
    read = router.route(method="GET").respond(200, json=CUSTOMER | {"id": hostile})
    put = router.route(method="PUT").respond(200, json={})
    sync_customer(context(upstreams, hostile))
    for route in (read, put):
        url = route.calls.last.request.url
        assert url.host in {"crm.test", "billing.test"}
        assert url.raw_path.count(b"/") == 2 and url.raw_path.startswith(b"/customers/")
        assert url.path == f"/customers/{hostile}"  # decoded: the id, whole


# --- invoice -----------------------------------------------------------------------------------


@pytest.fixture
def crm_ok(router: respx.Router) -> None:
    router.get(f"{CRM}/invoices/i_2001").respond(200, json=INVOICE)
    router.get(f"{CRM}/customers/c_1001").respond(200, json=CUSTOMER)


@pytest.mark.usefixtures("crm_ok")
def test_invoice_upserts_its_customer_then_creates_it_and_returns_the_effect(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    put = router.put(f"{BILLING}/customers/c_1001").respond(200, json={"id": "c_1001"})
    post = router.post(f"{BILLING}/invoices").respond(201, json={"id": "inv_000001"})
    ctx = context(upstreams, "i_2001", job_type="invoice")
    result = sync_invoice(ctx)
    key = ctx.effect_key("create_invoice", INVOICE_BODY)
    customer_key = ctx.effect_key("upsert_customer", {"id": "c_1001", **CUSTOMER_BODY})
    # The customer upsert rides along, so the ledger gets a row for it too.
    assert result == Success(
        effect=AppliedEffect(key, "billing", "inv_000001"),
        also_applied=(AppliedEffect(customer_key, "billing", "c_1001"),),
    )
    assert sent_json(post.calls.last) == INVOICE_BODY
    assert post.calls.last.request.headers["Idempotency-Key"] == key
    assert sent_json(put.calls.last) == CUSTOMER_BODY
    assert put.calls.last.request.headers["Idempotency-Key"] == customer_key
    assert customer_key != key
    order = [(c.request.method, c.request.url.path) for c in router.calls]
    assert order == [
        ("GET", "/invoices/i_2001"),
        ("GET", "/customers/c_1001"),
        ("PUT", "/customers/c_1001"),
        ("POST", "/invoices"),
    ]
    assert {c.request.headers["X-Correlation-ID"] for c in router.calls} == {"corr-1-1"}


@pytest.mark.usefixtures("crm_ok")
def test_a_duplicate_external_id_means_already_applied(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    router.put(f"{BILLING}/customers/c_1001").respond(200, json={})
    duplicate = {"detail": "duplicate external_id", "existing_id": "inv_000042"}
    router.post(f"{BILLING}/invoices").respond(409, json=duplicate)
    ctx = context(upstreams, "i_2001", job_type="invoice")
    with capture_logs() as logs:
        result = sync_invoice(ctx)
    key = ctx.effect_key("create_invoice", INVOICE_BODY)
    customer_key = ctx.effect_key("upsert_customer", {"id": "c_1001", **CUSTOMER_BODY})
    assert result == Success(
        effect=AppliedEffect(key, "billing", "inv_000042"),
        also_applied=(AppliedEffect(customer_key, "billing", "c_1001"),),
    )
    assert {
        "event": "invoice_already_applied",
        "external_id": "i_2001",
        "existing_id": "inv_000042",
        "log_level": "info",
    } in logs


@pytest.mark.usefixtures("crm_ok")
def test_a_customer_billing_holds_newer_is_not_reported_as_applied(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    stale = {"detail": "stale version", "current_version": 9}
    router.put(f"{BILLING}/customers/c_1001").respond(409, json=stale)
    router.post(f"{BILLING}/invoices").respond(201, json={"id": "inv_000001"})
    ctx = context(upstreams, "i_2001", job_type="invoice")
    key = ctx.effect_key("create_invoice", INVOICE_BODY)
    assert sync_invoice(ctx) == Success(effect=AppliedEffect(key, "billing", "inv_000001"))


def test_success_takes_only_applied_effects_and_keeps_them_as_a_tuple() -> None:
    effect = AppliedEffect("k-1", "billing", "r-1")
    assert Success(also_applied=[effect]).also_applied == (effect,)  # type: ignore[arg-type]
    generated = Success(also_applied=(e for e in [effect]))  # type: ignore[arg-type]
    assert generated.also_applied == (effect,)  # consumed once, kept
    # A plugin bug, raised after the effects were applied: retryable (classify), so the job
    # ends dead with an unknown outcome and reconcile looks for its effect.
    for bad, kind in [
        (lambda: Success(also_applied=({"effect_key": "k"},)), "dict"),  # type: ignore[arg-type]
        (lambda: Success(effect="k-1"), "str"),  # type: ignore[arg-type]
        (lambda: Success(effect=""), "str"),  # type: ignore[arg-type]  # falsy, still checked
        (lambda: Success(also_applied=(None,)), "NoneType"),  # type: ignore[arg-type]
        (lambda: Success(also_applied=None), "NoneType"),  # type: ignore[arg-type]
        (lambda: Success(also_applied=effect), "AppliedEffect"),  # type: ignore[arg-type]
    ]:
        with pytest.raises(TypeError, match=kind) as refused:
            bad()
        assert classify(refused.value).error.retryable is True  # type: ignore[union-attr]


@pytest.mark.usefixtures("crm_ok")
@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (409, {"detail": "request in progress"}, UpstreamUnavailable),  # retryable
        (409, {"detail": "some other conflict"}, ValidationError),  # nobody knows: terminal
        (409, {"detail": "duplicate external_id"}, ValidationError),  # no existing id named
        (201, {"created": True}, UpstreamUnavailable),  # a 2xx without an invoice id
        (422, {"detail": "Idempotency-Key reused with a different request"}, ValidationError),
        (502, "response lost", UpstreamUnavailable),
    ],
)
def test_invoice_post_outcomes_that_are_not_an_effect(
    router: respx.Router,
    upstreams: dict[str, UpstreamClient],
    status: int,
    body: object,
    error: type[Exception],
) -> None:
    router.put(f"{BILLING}/customers/c_1001").respond(200, json={})
    content = {"json": body} if isinstance(body, dict) else {"text": body}
    router.post(f"{BILLING}/invoices").respond(status, **content)
    with pytest.raises(error):
        sync_invoice(context(upstreams, "i_2001", job_type="invoice"))


@pytest.mark.usefixtures("crm_ok")
def test_every_attempt_of_one_lineage_sends_the_same_keys(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    put = router.put(f"{BILLING}/customers/c_1001").respond(200, json={})
    post = router.post(f"{BILLING}/invoices").mock(
        side_effect=[
            httpx.Response(502, text="response lost"),  # applied, answer lost
            httpx.ReadTimeout("read timed out"),  # unknown outcome
            httpx.Response(201, json={"id": "inv_000001"}),  # the stored answer, replayed
        ]
    )
    attempts = [
        context(upstreams, "i_2001", job_type="invoice", job_id=7, attempt=1, lineage_id=7),
        context(upstreams, "i_2001", job_type="invoice", job_id=7, attempt=2, lineage_id=7),
        context(upstreams, "i_2001", job_type="invoice", job_id=9, attempt=1, lineage_id=7),
    ]  # the third is a replay: a new job, the same lineage
    with pytest.raises(UpstreamUnavailable):
        sync_invoice(attempts[0])
    with pytest.raises(UpstreamTimeout):
        sync_invoice(attempts[1])
    result = sync_invoice(attempts[2])
    post_keys = [c.request.headers["Idempotency-Key"] for c in post.calls]
    put_keys = [c.request.headers["Idempotency-Key"] for c in put.calls]
    assert len(post_keys) == 3 and len(set(post_keys)) == 1
    assert len(put_keys) == 3 and len(set(put_keys)) == 1
    assert result is not None and result.effect is not None
    assert result.effect.effect_key == post_keys[0]


def test_a_changed_crm_record_or_another_lineage_changes_the_key(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    invoice = router.get(f"{CRM}/invoices/i_2001")
    router.get(f"{CRM}/customers/c_1001").respond(200, json=CUSTOMER)
    router.put(f"{BILLING}/customers/c_1001").respond(200, json={})
    post = router.post(f"{BILLING}/invoices").respond(201, json={"id": "inv_000001"})
    runs = [
        (INVOICE, 1),
        (INVOICE | {"amount_cents": 1300, "version": 2}, 1),  # changed in the CRM
        (INVOICE, 2),  # same body, another lineage
        (INVOICE, 1),  # back to the first request: the first key again
    ]
    for record, lineage in runs:
        invoice.respond(200, json=record)
        sync_invoice(context(upstreams, "i_2001", job_type="invoice", lineage_id=lineage))
    keys = [c.request.headers["Idempotency-Key"] for c in post.calls]
    assert len(set(keys[:3])) == 3 and keys[3] == keys[0]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"id": "i_2002"}, "id"),
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": ""}, "customer_id"),
        ({"customer_id": 1001}, "customer_id"),
        ({"amount_cents": -1}, "amount_cents"),
        ({"amount_cents": "1200"}, "amount_cents"),
        ({"amount_cents": 12.5}, "amount_cents"),
        ({"amount_cents": True}, "amount_cents"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"currency": ""}, "currency"),
        ({"currency": None}, "currency"),
        ({"description": 7}, "description"),
    ],
)
def test_a_bad_invoice_record_fails_naming_the_field_and_writes_nothing(
    router: respx.Router,
    upstreams: dict[str, UpstreamClient],
    patch: dict[str, Any],
    field: str,
) -> None:
    router.get(f"{CRM}/invoices/i_2001").respond(200, json=INVOICE | patch)
    with pytest.raises(ValidationError) as caught:
        sync_invoice(context(upstreams, "i_2001", job_type="invoice"))
    assert caught.value.field == field and f"field {field!r}" in str(caught.value)
    assert [c.request.method for c in router.calls] == ["GET"]


def test_a_bad_customer_of_an_invoice_is_named_as_such(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    router.get(f"{CRM}/invoices/i_2001").respond(200, json=INVOICE)
    router.get(f"{CRM}/customers/c_1001").respond(200, json=CUSTOMER | {"email": "nope"})
    with pytest.raises(ValidationError) as caught:
        sync_invoice(context(upstreams, "i_2001", job_type="invoice"))
    assert caught.value.field == "customer.email"
    assert [c.request.method for c in router.calls] == ["GET", "GET"]


@pytest.mark.parametrize("path", ["invoices/i_2001", "customers/c_1001"])
def test_a_missing_invoice_or_customer_is_not_found(
    router: respx.Router, upstreams: dict[str, UpstreamClient], path: str
) -> None:
    router.get(f"{CRM}/invoices/i_2001").respond(200, json=INVOICE)
    router.get(f"{CRM}/customers/c_1001").respond(200, json=CUSTOMER)
    router.get(f"{CRM}/{path}").respond(404, json={"detail": "not found"})
    with pytest.raises(NotFound, match=f"crm GET /{path} -> 404"):
        sync_invoice(context(upstreams, "i_2001", job_type="invoice"))


@pytest.mark.usefixtures("crm_ok")
def test_an_invoice_job_stops_before_creating_the_invoice_when_asked(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    ctx = context(upstreams, "i_2001", job_type="invoice")

    def lease_lost_during_put(request: httpx.Request) -> httpx.Response:
        ctx.request_stop("lease lost")
        return httpx.Response(200, json={})

    router.put(f"{BILLING}/customers/c_1001").mock(side_effect=lease_lost_during_put)
    post = router.post(f"{BILLING}/invoices").respond(201, json={"id": "inv_000001"})
    with pytest.raises(UpstreamUnavailable, match="stopped before POST /invoices: lease lost"):
        sync_invoice(ctx)
    assert not post.called


def test_reconcile_finds_an_invoice_created_by_a_lost_attempt(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    found = {"id": "inv_000005", "external_id": "i_2001"}
    lookup = router.get(f"{BILLING}/invoices").respond(200, json={"items": [found]})
    ctx = context(upstreams, "i_2001", job_type="invoice", lineage_id=3)
    effect = reconcile_invoice(ctx)
    assert effect == AppliedEffect("reconciled-3-i_2001", "billing", "inv_000005")
    assert lookup.calls.last.request.url.params["external_id"] == "i_2001"
    lookup.respond(200, json={"items": []})
    assert reconcile_invoice(ctx) is None


def test_reconcile_customer_credits_only_this_jobs_own_writes(
    router: respx.Router, upstreams: dict[str, UpstreamClient]
) -> None:
    """A write is this job's if its key is of this job's lineage and it carries this job's
    correlation id (the last such write if the CRM record changed between attempts). Not: a
    replay's write (same lineage, its own correlation id), another lineage's, one without a key
    or without a correlation id."""
    ctx = context(upstreams, "c_1001", job_type="customer", job_id=3, lineage_id=3)
    mine_first, mine_last = effect_key(3, "upsert_customer", {"v": 1}), effect_key(3, "u", {"v": 2})
    others = effect_key(33, "upsert_customer", {"v": 1})
    corr = ctx.correlation_id
    listed = router.get(f"{BILLING}/customer_writes")
    items: list[Any] = [
        {"idempotency_key": mine_first, "correlation_id": corr, "version": 1},
        {"idempotency_key": mine_last, "correlation_id": f"{corr}~replay-1", "version": 2},
        {"idempotency_key": others, "correlation_id": corr, "version": 3},
        {"idempotency_key": None, "correlation_id": corr, "version": 4},
        {"idempotency_key": mine_last, "correlation_id": None, "version": 5},
        {"idempotency_key": mine_last, "correlation_id": corr, "version": 6},
        "not a write",
    ]
    listed.respond(200, json={"items": items, "in_progress": []})
    assert reconcile_customer(ctx) == AppliedEffect(mine_last, "billing", "c_1001")
    assert listed.calls.last.request.url.params["customer_id"] == "c_1001"
    listed.respond(200, json={"items": items[1:5], "in_progress": []})
    assert reconcile_customer(ctx) is None
    # Billing has no such customer, or no write yet; others' requests in progress do not matter.
    others_pending = [{"idempotency_key": others, "correlation_id": f"{corr}~replay-1"}]
    listed.respond(200, json={"items": [], "in_progress": others_pending})
    assert reconcile_customer(ctx) is None
    # One of this job's requests still being processed: no answer yet, applied or not.
    for writes in ([], items):
        mine = [{"idempotency_key": mine_last, "correlation_id": corr}]
        listed.respond(200, json={"items": writes, "in_progress": mine})
        with pytest.raises(UpstreamUnavailable, match="still processing"):
            reconcile_customer(ctx)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, json={"detail": "Not Found"}),  # a Billing without the list
        httpx.Response(200, json={"writes": []}),
        httpx.Response(200, json={"items": "none", "in_progress": []}),
        httpx.Response(200, json={"items": []}),  # no word on requests in progress
        httpx.Response(503, json={"detail": "down"}),
        httpx.Response(429, headers={"Retry-After": "1"}),
    ],
    ids=["404", "no-items", "items-not-a-list", "no-in-progress", "503", "429"],
)
def test_reconcile_customer_gives_no_answer_when_billing_cannot_tell(
    router: respx.Router, upstreams: dict[str, UpstreamClient], answer: httpx.Response
) -> None:
    """Only a list of writes is an answer: anything else raises, and reconcile asks again
    later instead of recording ``not_applied``. Hostile ids go as a query parameter."""
    hostile = "c_1001/../x?y#z&customer_id=c_1"
    listed = router.get(f"{BILLING}/customer_writes").mock(return_value=answer)
    with pytest.raises((NotFound, UpstreamUnavailable, UpstreamRateLimited)):
        reconcile_customer(context(upstreams, hostile, job_type="customer"))
    assert listed.calls.last.request.url.params.get_list("customer_id") == [hostile]
