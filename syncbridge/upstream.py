"""The engine's HTTP edge: one injected ``httpx.Client`` per upstream (pooling, timeouts) and
the mapping of transport errors and statuses to the typed errors of :mod:`syncbridge.errors`.

Every call sends ``X-Correlation-ID`` (when bound) and ``Idempotency-Key`` (when given).
Entity ids are URL-quoted into paths, so hostile ids cannot change the route.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import httpx

from syncbridge.clock import Clock, SystemClock
from syncbridge.config import Settings
from syncbridge.errors import (
    NotFound,
    UpstreamAuthError,
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    ValidationError,
)
from syncbridge.retry import RETRY_AFTER_CAP_SECONDS

ResponseHook = Callable[[str, str, int | None, float], None]
IN_PROGRESS = "request in progress"


def segment(value: str) -> str:
    """One path segment: every reserved character quoted, ``/`` and ``..`` included."""
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date; None when absent or garbage."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when: datetime = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - clock.now()).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


class UpstreamClient:
    def __init__(
        self,
        name: str,
        client: httpx.Client,
        correlation_id: str | None = None,
        on_response: ResponseHook | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._client = client
        self.correlation_id = correlation_id
        self._on_response = on_response
        self._clock = clock or SystemClock()

    @classmethod
    def create(
        cls,
        name: str,
        base_url: str,
        timeout_seconds: float,
        transport: httpx.BaseTransport | None = None,
        on_response: ResponseHook | None = None,
        clock: Clock | None = None,
    ) -> UpstreamClient:
        client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_seconds),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
            transport=transport,
        )
        return cls(name, client, on_response=on_response, clock=clock)

    def bind(self, *, correlation_id: str) -> UpstreamClient:
        return UpstreamClient(
            self.name, self._client, correlation_id, self._on_response, self._clock
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """Send one request; raise the typed error its outcome maps to. A 409 other than
        "request in progress" is returned: what it means is the caller's business."""
        headers = {}
        if self.correlation_id:
            headers["X-Correlation-ID"] = self.correlation_id
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        where = f"{self.name} {method} {path}"
        started = time.perf_counter()
        try:
            response = self._client.request(method, path, json=json, params=params, headers=headers)
        except (httpx.TimeoutException, httpx.ConnectError) as exc:
            self._observe(method, None, started)
            raise UpstreamTimeout(f"{where}: {type(exc).__name__}: {exc}") from exc
        except httpx.TransportError as exc:  # dropped connection, protocol error
            self._observe(method, None, started)
            raise UpstreamUnavailable(f"{where}: {type(exc).__name__}: {exc}") from exc
        self._observe(method, response.status_code, started)
        return self._check(response, where)

    def _observe(self, method: str, status: int | None, started: float) -> None:
        if self._on_response is not None:
            self._on_response(self.name, method, status, time.perf_counter() - started)

    def _check(self, response: httpx.Response, where: str) -> httpx.Response:
        status = response.status_code
        if status < 400:
            return response
        detail = _detail(response)
        message = f"{where} -> {status}: {detail}"
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock)
            raise UpstreamRateLimited(message, retry_after=retry_after)
        if status >= 500:
            raise UpstreamUnavailable(message, http_status=status)
        if status == 409:
            if IN_PROGRESS in detail.lower():
                raise UpstreamUnavailable(message, http_status=status)
            return response
        if status in (401, 403):
            raise UpstreamAuthError(message, http_status=status)
        if status == 404:
            raise NotFound(message, http_status=status)
        if status in (400, 422):
            raise ValidationError(message, http_status=status)
        raise ValidationError(message, http_status=status)

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self.json_body(self.request("GET", path, params=params), f"GET {path}")

    def send_json(
        self, method: str, path: str, body: Any, *, idempotency_key: str | None
    ) -> dict[str, Any]:
        response = self.request(method, path, json=body, idempotency_key=idempotency_key)
        return self.json_body(response, f"{method} {path}")

    def json_body(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The body as a JSON object. A 2xx that is not one (an HTML error page from a proxy,
        a truncated body) is treated as transient: the upstream behind it is not answering."""
        try:
            value = response.json()
        except ValueError:
            snippet = response.text[:80].replace("\n", " ")
            raise UpstreamUnavailable(
                f"{self.name} {what}: {response.status_code} with a non-JSON body: {snippet!r}",
                http_status=response.status_code,
            ) from None
        if not isinstance(value, dict):
            raise UpstreamUnavailable(
                f"{self.name} {what}: expected a JSON object, got {type(value).__name__}",
                http_status=response.status_code,
            )
        return value


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


def build_upstreams(
    settings: Settings,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    on_response: ResponseHook | None = None,
) -> dict[str, UpstreamClient]:
    transports = transports or {}
    urls = {"crm": settings.crm_url, "billing": settings.billing_url}
    return {
        name: UpstreamClient.create(
            name, url, settings.upstream_timeout_seconds, transports.get(name), on_response
        )
        for name, url in urls.items()
    }


def close_upstreams(upstreams: Mapping[str, UpstreamClient]) -> None:
    for client in upstreams.values():
        client.close()


def find_invoice_by_external_id(billing: UpstreamClient, external_id: str) -> dict[str, Any] | None:
    """Billing's invoice for a CRM invoice id, or None; Billing keeps ``external_id`` unique."""
    body = billing.get_json("/invoices", params={"external_id": external_id})
    items = body.get("items")
    if not isinstance(items, list):
        raise UpstreamUnavailable(f"billing GET /invoices: no item list in {str(body)[:80]}")
    for item in items:
        if isinstance(item, dict) and item.get("external_id") == external_id:
            return item
    return None
