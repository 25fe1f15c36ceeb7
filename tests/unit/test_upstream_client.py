"""The HTTP edge maps every transport outcome to a typed error (respx, no hand-made fakes)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import respx

from syncbridge.clock import FakeClock
from syncbridge.errors import (
    NotFound,
    SyncBridgeError,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationError,
)
from syncbridge.upstream import UpstreamClient, parse_retry_after, segment

BASE = "http://crm.test"


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
def client() -> Iterator[UpstreamClient]:
    clock = FakeClock(datetime(2030, 1, 1, tzinfo=UTC))
    upstream = UpstreamClient.create("crm", BASE, 1.0, clock=clock)
    yield upstream.bind(correlation_id="corr-1")
    upstream.close()


@pytest.mark.parametrize(
    ("status", "body", "error", "retryable"),
    [
        (500, {"detail": "boom"}, UpstreamUnavailable, True),
        (502, "bad gateway", UpstreamUnavailable, True),
        (503, {"detail": "injected"}, UpstreamUnavailable, True),
        (409, {"detail": "request in progress"}, UpstreamUnavailable, True),
        (429, {"detail": "slow"}, UpstreamRateLimited, True),
        (401, {"detail": "no"}, UpstreamAuthError, False),
        (403, {"detail": "no"}, UpstreamAuthError, False),
        (404, {"detail": "customer not found"}, NotFound, False),
        (400, {"detail": "bad"}, ValidationError, False),
        (422, {"detail": "bad"}, ValidationError, False),
    ],
)
def test_status_mapping(
    mock: respx.MockRouter,
    client: UpstreamClient,
    status: int,
    body: object,
    error: type[SyncBridgeError],
    retryable: bool,
) -> None:
    kwargs = {"json": body} if not isinstance(body, str) else {"text": body}
    mock.get("/customers/c_1").respond(status, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(error) as caught:
        client.get_json("/customers/c_1")
    assert caught.value.retryable is retryable
    assert "crm GET /customers/c_1" in str(caught.value) and str(status) in str(caught.value)


def test_other_409_is_returned_to_the_caller(
    mock: respx.MockRouter, client: UpstreamClient
) -> None:
    mock.post("/invoices").respond(
        409, json={"detail": "duplicate external_id", "existing_id": "inv_1"}
    )
    response = client.request("POST", "/invoices", json={}, idempotency_key="k")
    assert response.status_code == 409


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("Tue, 01 Jan 2030 00:00:30 GMT", 30.0),
        ("garbage", None),
        (None, None),
        ("-5", 0.0),
        ("999999", 3600.0),
        ("nan", None),
    ],
)
def test_retry_after_as_seconds_or_http_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, FakeClock(datetime(2030, 1, 1, tzinfo=UTC))) == expected


def test_rate_limit_carries_retry_after(mock: respx.MockRouter, client: UpstreamClient) -> None:
    mock.get("/customers/c_1").respond(429, headers={"Retry-After": "12"})
    with pytest.raises(UpstreamRateLimited) as caught:
        client.get_json("/customers/c_1")
    assert caught.value.retry_after == 12.0 and caught.value.http_status == 429


@pytest.mark.parametrize(
    ("exc", "error"),
    [
        (httpx.ConnectTimeout("t"), UpstreamTimeout),
        (httpx.ReadTimeout("t"), UpstreamTimeout),
        (httpx.ConnectError("refused"), UpstreamTimeout),
        (httpx.RemoteProtocolError("dropped"), UpstreamUnavailable),
        (httpx.ReadError("reset"), UpstreamUnavailable),
    ],
)
def test_transport_errors(
    mock: respx.MockRouter, client: UpstreamClient, exc: Exception, error: type[SyncBridgeError]
) -> None:
    mock.get("/customers/c_1").mock(side_effect=exc)
    with pytest.raises(error):
        client.get_json("/customers/c_1")


@pytest.mark.parametrize("body", ["<html><body>502 Bad Gateway</body></html>", "[1, 2]", ""])
def test_a_2xx_that_is_not_a_json_object_is_transient(
    mock: respx.MockRouter, client: UpstreamClient, body: str
) -> None:
    mock.get("/customers/c_1").respond(200, text=body)
    with pytest.raises(UpstreamUnavailable, match=r"non-JSON|JSON object"):
        client.get_json("/customers/c_1")


def test_headers_sent(mock: respx.MockRouter, client: UpstreamClient) -> None:
    route = mock.put("/customers/c_1").respond(200, json={"id": "c_1"})
    client.send_json("PUT", "/customers/c_1", {"a": 1}, idempotency_key="key-9")
    request = route.calls.last.request
    assert request.headers["X-Correlation-ID"] == "corr-1"
    assert request.headers["Idempotency-Key"] == "key-9"


@pytest.mark.parametrize(
    "hostile", ["../admin", "a/b", "<img src=x onerror=alert(1)>", "ユーザー🚀", "..", "a?b=c#d"]
)
def test_hostile_ids_cannot_change_the_route(
    mock: respx.MockRouter, client: UpstreamClient, hostile: str
) -> None:
    route = mock.get(url__regex=r"^http://crm\.test/customers/[^/]+$").respond(json={"ok": 1})
    client.get_json(f"/customers/{segment(hostile)}")
    sent = route.calls.last.request.url
    assert sent.raw_path.count(b"/") == 2 and sent.query == b""  # raw: %2F stays quoted
