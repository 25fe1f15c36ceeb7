"""The HTTP edge (``syncbridge.upstream``): every outcome maps to one typed error, the right
headers go out, and hostile ids stay inside their path segment.

Upstreams are respx routers mounted through the client's injected transport, the seam the engine
uses too; no hand-written fakes of httpx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import respx

from syncbridge.clock import FakeClock
from syncbridge.config import Settings
from syncbridge.errors import (
    NotFound,
    SyncBridgeError,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationError,
)
from syncbridge.upstream import (
    UpstreamClient,
    build_upstreams,
    close_upstreams,
    find_invoice_by_external_id,
    segment,
)

BASE = "http://crm.test"
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # a Tuesday
Seen = tuple[str, str, int | None, float]


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=BASE, assert_all_mocked=True)


@pytest.fixture
def seen() -> list[Seen]:
    return []


@pytest.fixture
def unbound(router: respx.Router, seen: list[Seen]) -> Iterator[UpstreamClient]:
    def on_response(upstream: str, method: str, status: int | None, seconds: float) -> None:
        seen.append((upstream, method, status, seconds))

    upstream = UpstreamClient.create(
        "crm",
        BASE,
        2.5,
        transport=httpx.MockTransport(router.handler),
        on_response=on_response,
        clock=FakeClock(NOW),
    )
    yield upstream
    upstream.close()


@pytest.fixture
def client(unbound: UpstreamClient) -> UpstreamClient:
    return unbound.bind(correlation_id="corr-1")


# --- status mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, {"detail": "boom"}, UpstreamUnavailable),
        (502, "response lost", UpstreamUnavailable),
        (503, {"detail": "injected fault"}, UpstreamUnavailable),
        (504, "<html>gateway timeout</html>", UpstreamUnavailable),
        (409, {"detail": "request in progress"}, UpstreamUnavailable),
        (429, {"detail": "slow down"}, UpstreamRateLimited),
        (408, {"detail": "request timeout"}, UpstreamTimeout),
        (302, "", UpstreamUnavailable),
        (401, {"detail": "no token"}, UpstreamAuthError),
        (403, {"detail": "forbidden"}, UpstreamAuthError),
        (404, {"detail": "customer not found"}, NotFound),
        (400, {"detail": "bad request"}, ValidationError),
        (422, {"detail": "unprocessable"}, ValidationError),
        (405, {"detail": "method not allowed"}, ValidationError),
    ],
)
def test_each_status_maps_to_one_typed_error(
    router: respx.Router,
    client: UpstreamClient,
    status: int,
    body: object,
    error: type[SyncBridgeError],
) -> None:
    content = {"json": body} if isinstance(body, dict) else {"text": body}
    router.put("/customers/c_1").respond(status, **content)
    with pytest.raises(error) as caught:
        client.send_json("PUT", "/customers/c_1", {"name": "Ada"}, idempotency_key="k")
    assert type(caught.value) is error
    assert caught.value.http_status == status
    assert "crm PUT /customers/c_1 -> " + str(status) in str(caught.value)


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (UpstreamTimeout, True),
        (UpstreamUnavailable, True),
        (UpstreamRateLimited, True),
        (NotFound, False),
        (ValidationError, False),
        (UpstreamAuthError, False),
    ],
)
def test_retryable_and_terminal_branches(error: type[SyncBridgeError], retryable: bool) -> None:
    assert error.retryable is retryable


def test_the_error_message_carries_the_upstream_detail(
    router: respx.Router, client: UpstreamClient
) -> None:
    router.get("/customers/c_1").respond(404, json={"detail": "customer c_1 not found"})
    with pytest.raises(NotFound, match=r"crm GET /customers/c_1 -> 404: customer c_1 not found"):
        client.get_json("/customers/c_1")


def test_a_redirect_is_not_followed_and_says_where_it_pointed(
    router: respx.Router, client: UpstreamClient
) -> None:
    router.get("/customers/c_1").respond(301, headers={"Location": "https://crm.test/c_1"})
    with pytest.raises(UpstreamUnavailable, match=re.escape("https://crm.test/c_1")):
        client.get_json("/customers/c_1")
    assert len(router.calls) == 1


def test_another_409_is_returned_to_the_caller_of_request(
    router: respx.Router, client: UpstreamClient
) -> None:
    duplicate = {"detail": "duplicate external_id", "existing_id": "inv_000001"}
    router.post("/invoices").respond(409, json=duplicate)
    response = client.request("POST", "/invoices", json={}, idempotency_key="k")
    assert response.status_code == 409
    assert client.json_body(response, "POST /invoices") == duplicate


def test_a_409_nobody_interprets_is_terminal_for_the_json_helpers(
    router: respx.Router, client: UpstreamClient
) -> None:
    router.put("/customers/c_1").respond(409, json={"detail": "stale version"})
    with pytest.raises(ValidationError, match=r"crm PUT /customers/c_1 -> 409: stale version"):
        client.send_json("PUT", "/customers/c_1", {}, idempotency_key="k")


# --- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("1.5", 1.5),
        ("Tue, 01 Jan 2030 00:00:30 GMT", 30.0),  # an HTTP date, read against the FakeClock
        ("Tue, 01 Jan 2030 00:02:00 -0000", 120.0),  # a naive date is taken as UTC
        ("Mon, 31 Dec 2029 23:59:00 GMT", 0.0),  # already past
        ("86400", 3600.0),  # capped at one hour
        ("Wed, 01 Jan 2031 00:00:00 GMT", 3600.0),
        ("-5", 0.0),
        ("soon", None),
        ("nan", None),
        ("inf", None),
        ("", None),
        (None, None),
    ],
)
def test_429_carries_retry_after_as_seconds_or_an_http_date(
    router: respx.Router, client: UpstreamClient, header: str | None, expected: float | None
) -> None:
    headers = {"Retry-After": header} if header is not None else {}
    router.get("/customers/c_1002").respond(429, headers=headers, json={"detail": "rate limited"})
    with pytest.raises(UpstreamRateLimited) as caught:
        client.get_json("/customers/c_1002")
    assert caught.value.retry_after == expected
    assert caught.value.http_status == 429 and caught.value.retryable


# --- transport errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectTimeout("connect timed out"), UpstreamTimeout),
        (httpx.ReadTimeout("read timed out"), UpstreamTimeout),
        (httpx.WriteTimeout("write timed out"), UpstreamTimeout),
        (httpx.PoolTimeout("no connection free"), UpstreamTimeout),
        (httpx.ConnectError("connection refused"), UpstreamTimeout),
        (httpx.RemoteProtocolError("server disconnected"), UpstreamUnavailable),
        (httpx.ReadError("connection reset by peer"), UpstreamUnavailable),
        (httpx.DecodingError("bad gzip"), UpstreamUnavailable),
    ],
)
def test_transport_errors_are_retryable_and_name_the_call(
    router: respx.Router,
    client: UpstreamClient,
    seen: list[Seen],
    exc: Exception,
    error: type[SyncBridgeError],
) -> None:
    router.get("/customers/c_1").mock(side_effect=exc)
    with pytest.raises(error) as caught:
        client.get_json("/customers/c_1")
    assert type(caught.value) is error and caught.value.retryable
    assert str(caught.value).startswith("crm GET /customers/c_1: no response: ")
    assert caught.value.__cause__ is exc
    assert [(s[0], s[1], s[2]) for s in seen] == [("crm", "GET", None)]


# --- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "match"),
    [
        ("<html><body><h1>Service temporarily down</h1></body></html>", "text/html", "non-JSON"),
        ("", "application/json", "non-JSON"),
        ('{"id": "c_1", "na', "application/json", "non-JSON"),
        ("[1, 2]", "application/json", "expected a JSON object, got list"),
        ('"c_1"', "application/json", "expected a JSON object, got str"),
        ("null", "application/json", "expected a JSON object, got NoneType"),
    ],
)
def test_a_200_that_is_not_a_json_object_is_transient(
    router: respx.Router, client: UpstreamClient, body: str, content_type: str, match: str
) -> None:
    router.get("/customers/c_1").respond(200, text=body, headers={"Content-Type": content_type})
    with pytest.raises(UpstreamUnavailable, match=match) as caught:
        client.get_json("/customers/c_1")
    assert "crm GET /customers/c_1 -> 200" in str(caught.value)
    assert caught.value.retryable and caught.value.http_status == 200


def test_a_204_is_an_empty_object(router: respx.Router, client: UpstreamClient) -> None:
    router.put("/customers/c_1").respond(204)
    assert client.send_json("PUT", "/customers/c_1", {}, idempotency_key="k") == {}


def test_json_is_sent_and_answered(router: respx.Router, client: UpstreamClient) -> None:
    route = router.put("/customers/c_1").respond(201, json={"id": "c_1", "version": 1})
    answer = client.send_json("PUT", "/customers/c_1", {"name": "Ada"}, idempotency_key="k")
    assert answer == {"id": "c_1", "version": 1}
    assert route.calls.last.request.read() == b'{"name":"Ada"}'


# --- headers and binding -----------------------------------------------------------------------


def test_bound_calls_send_the_correlation_id_and_the_idempotency_key(
    router: respx.Router, client: UpstreamClient
) -> None:
    route = router.put("/customers/c_1").respond(200, json={"id": "c_1"})
    client.send_json("PUT", "/customers/c_1", {"a": 1}, idempotency_key="sb-7-abc")
    request = route.calls.last.request
    assert request.headers["X-Correlation-ID"] == "corr-1"
    assert request.headers["Idempotency-Key"] == "sb-7-abc"


def test_no_header_is_invented(router: respx.Router, unbound: UpstreamClient) -> None:
    route = router.get("/customers/c_1").respond(200, json={"id": "c_1"})
    unbound.get_json("/customers/c_1")
    assert "X-Correlation-ID" not in route.calls.last.request.headers
    assert "Idempotency-Key" not in route.calls.last.request.headers


def test_bind_is_a_cheap_copy_sharing_the_pooled_client(
    router: respx.Router, unbound: UpstreamClient, seen: list[Seen]
) -> None:
    route = router.get("/customers/c_1").respond(200, json={})
    first, second = unbound.bind(correlation_id="a"), unbound.bind(correlation_id="b")
    first.get_json("/customers/c_1")
    second.get_json("/customers/c_1")
    assert [c.request.headers["X-Correlation-ID"] for c in route.calls] == ["a", "b"]
    assert unbound.correlation_id is None and first.name == "crm"
    assert [s[:3] for s in seen] == [("crm", "GET", 200)] * 2  # the hook travels with the copy
    unbound.close()  # one shared httpx.Client: closing it closes every copy
    with pytest.raises(RuntimeError, match="closed"):
        first.get_json("/customers/c_1")


def test_the_metrics_hook_sees_every_response_even_an_error(
    router: respx.Router, client: UpstreamClient, seen: list[Seen]
) -> None:
    router.get("/customers/c_1").respond(200, json={})
    router.get("/customers/c_down").respond(503, json={"detail": "down"})
    client.get_json("/customers/c_1")
    with pytest.raises(UpstreamUnavailable):
        client.get_json("/customers/c_down")
    assert [s[:3] for s in seen] == [("crm", "GET", 200), ("crm", "GET", 503)]
    assert all(s[3] >= 0 for s in seen)


# --- hostile ids -------------------------------------------------------------------------------

HOSTILE = [
    "../admin",
    "c_1/../../admin",
    "a/b",
    "..",
    ".",
    "<img src=x onerror=alert(1)>",
    "a?b=c#d",
    "%2F",
    "ユーザー🚀",
    " spaced\tout\n",
    "c_1;drop",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_ids_stay_inside_their_path_segment(
    router: respx.Router, client: UpstreamClient, hostile: str
) -> None:
    route = router.route().respond(200, json={})
    client.get_json(f"/customers/{segment(hostile)}")
    url = route.calls.last.request.url
    prefix, _, sent = url.raw_path.decode("ascii").rpartition("/")
    assert prefix == "/customers" and url.query == b"" and url.fragment == ""
    assert unquote(sent) == hostile


def test_an_empty_id_names_no_resource() -> None:
    with pytest.raises(ValidationError, match="empty id"):
        segment("")


# --- wiring ------------------------------------------------------------------------------------


def test_build_upstreams_follows_the_settings_and_close_upstreams_closes_them() -> None:
    router = respx.Router(assert_all_mocked=True)
    crm = router.get("http://crm.test:8101/customers/c_1").respond(200, json={"id": "c_1"})
    billing = router.get("http://billing.test:8102/invoices").respond(200, json={"items": []})
    settings = Settings(
        crm_url="http://crm.test:8101",
        billing_url="http://billing.test:8102",
        upstream_timeout_seconds=4.5,
    )
    transport = httpx.MockTransport(router.handler)
    upstreams = build_upstreams(settings, {"crm": transport, "billing": transport})
    assert sorted(upstreams) == ["billing", "crm"]
    assert upstreams["crm"].name == "crm" and upstreams["billing"].name == "billing"
    upstreams["crm"].get_json("/customers/c_1")
    upstreams["billing"].get_json("/invoices")
    timeouts = crm.calls.last.request.extensions["timeout"]
    assert timeouts == {"connect": 4.5, "read": 4.5, "write": 4.5, "pool": 4.5}
    assert billing.called
    close_upstreams(upstreams)
    for upstream in upstreams.values():
        with pytest.raises(RuntimeError, match="closed"):
            upstream.get_json("/customers/c_1")


def test_upstream_clients_are_made_on_first_use_once_even_from_many_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker running only job types that call no upstream builds no HTTP client (start-up
    CPU); fifty handler threads asking at once share one client per upstream."""
    import threading

    made: list[str] = []
    create = UpstreamClient.create.__func__  # type: ignore[attr-defined]

    def counting(cls: type[UpstreamClient], name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(name)
        return create(cls, name, *args, **kwargs)

    monkeypatch.setattr(UpstreamClient, "create", classmethod(counting))
    upstreams = build_upstreams(Settings(crm_url="http://crm.test", billing_url="http://b.test"))
    assert sorted(upstreams) == ["billing", "crm"] and len(upstreams) == 2 and made == []
    assert "crm" in upstreams and "ledger" not in upstreams and made == []
    start = threading.Barrier(50)
    seen: list[UpstreamClient] = []

    def ask() -> None:
        start.wait()
        seen.append(upstreams["crm"])

    threads = [threading.Thread(target=ask) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == ["crm"] and len({id(client) for client in seen}) == 1
    with pytest.raises(KeyError):
        upstreams["ledger"]
    close_upstreams(upstreams)
    assert made == ["crm"]  # closing makes none of the unused ones
    with pytest.raises(RuntimeError, match="closed"):
        seen[0].get_json("/customers/c_1")
    with pytest.raises(RuntimeError, match="after the upstreams closed"):
        upstreams["billing"]


# --- find_invoice_by_external_id ---------------------------------------------------------------


@pytest.fixture
def billing(router: respx.Router) -> Iterator[UpstreamClient]:
    upstream = UpstreamClient.create(
        "billing", BASE, 1.0, transport=httpx.MockTransport(router.handler)
    )
    yield upstream
    upstream.close()


def test_find_invoice_by_external_id_finds_it(
    router: respx.Router, billing: UpstreamClient
) -> None:
    invoice = {"id": "inv_000001", "external_id": "i_2001", "amount_cents": 1200}
    route = router.get("/invoices").respond(200, json={"items": [invoice]})
    assert find_invoice_by_external_id(billing, "i_2001") == invoice
    assert route.calls.last.request.url.params["external_id"] == "i_2001"


@pytest.mark.parametrize(
    "items", [[], [{"id": "inv_000002", "external_id": "i_other"}], ["not-an-object"]]
)
def test_find_invoice_by_external_id_none_when_billing_has_no_such_invoice(
    router: respx.Router, billing: UpstreamClient, items: list[object]
) -> None:
    router.get("/invoices").respond(200, json={"items": items})
    assert find_invoice_by_external_id(billing, "i_2001") is None


def test_find_invoice_by_external_id_quotes_a_hostile_id(
    router: respx.Router, billing: UpstreamClient
) -> None:
    route = router.get("/invoices").respond(200, json={"items": []})
    find_invoice_by_external_id(billing, "x&external_id=i_2001#")
    params = route.calls.last.request.url.params
    assert params.get_list("external_id") == ["x&external_id=i_2001#"]


def test_find_invoice_by_external_id_refuses_an_answer_without_items(
    router: respx.Router, billing: UpstreamClient
) -> None:
    router.get("/invoices").respond(200, json={"detail": "?"})
    with pytest.raises(UpstreamUnavailable, match="no item list"):
        find_invoice_by_external_id(billing, "i_2001")
