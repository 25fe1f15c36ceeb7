"""The engine's HTTP edge: one injected ``httpx.Client`` per upstream (pooling, timeouts) and
the mapping of transport errors and statuses to the typed errors of :mod:`syncbridge.errors`.

Every call sends ``X-Correlation-ID`` (when bound) and ``Idempotency-Key`` (when given).
Entity ids go into paths through :func:`segment`, so hostile ids cannot change the route.

Mapping (every message names upstream, method, path and status): timeout or connect error ->
``UpstreamTimeout``; other transport error (dropped connection, bad encoding), 5xx, a redirect
(never followed) and 409 "request in progress" -> ``UpstreamUnavailable``; 408 ->
``UpstreamTimeout``; 429 -> ``UpstreamRateLimited(retry_after=...)``; 401/403 ->
``UpstreamAuthError``; 404 -> ``NotFound``; 400, 422 and any other 4xx -> ``ValidationError``
(the same request cannot succeed later); another 409 is returned by ``request()`` for the caller
to interpret; a 2xx that is not a JSON object -> ``UpstreamUnavailable`` (see ``json_body``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx

from syncbridge.clock import Clock, SystemClock, utc
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

# The metrics seam: ``on_response(upstream, method, status, seconds)`` after every request;
# ``status`` is None when no response came back (transport error). No-op unless given.
ResponseHook = Callable[[str, str, int | None, float], None]
IN_PROGRESS = "request in progress"


def segment(value: str) -> str:
    """One path segment: every reserved character quoted, ``/`` and ``..`` included."""
    if not value:
        raise ValidationError("an empty id cannot name an upstream resource")
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted in {".", ".."} else quoted


def parse_retry_after(value: str | None, clock: Clock) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date, capped at an hour; None when absent or
    garbage (the engine's own backoff applies then)."""
    value = (value or "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None  # "" lands here too
        seconds = (utc(when) - clock.now()).total_seconds()  # "-0000" dates are naive: UTC
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


# Up to 100 connections, 20 kept alive between requests. httpcore's sync pool (1.0.9) can close
# a surplus keep-alive connection it has just handed to a waiting thread (encode/httpcore#1110):
# that request fails with ``ReadError: [Errno 9] Bad file descriptor``, which maps to a retryable
# ``UpstreamUnavailable`` like any lost response (the retry carries the same idempotency key).
# Measured against the mocks, 100 threads on one client: 4 such errors in 30,000 requests here,
# none with keep-alive 100; but keep-alive 100 (or fewer connections) cut the `sync` benchmark
# from ~520 to 310-440 jobs/s, so the rare retry is the cheaper side.
UPSTREAM_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class UpstreamClient:
    """One upstream. :meth:`bind` makes cheap per-job copies sharing the pooled client."""

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
            limits=UPSTREAM_LIMITS,
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
        headers: dict[str, str] = {}
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
            raise UpstreamTimeout(f"{where}: no response: {type(exc).__name__}: {exc}") from exc
        except httpx.RequestError as exc:  # dropped connection, protocol or decoding error
            self._observe(method, None, started)
            raise UpstreamUnavailable(f"{where}: no response: {type(exc).__name__}: {exc}") from exc
        self._observe(method, response.status_code, started)
        return self._check(response, where)

    def get_json(self, path: str, *, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._object(self.request("GET", path, params=params), f"GET {path}")

    def send_json(
        self, method: str, path: str, body: Any, *, idempotency_key: str | None
    ) -> dict[str, Any]:
        response = self.request(method, path, json=body, idempotency_key=idempotency_key)
        return self._object(response, f"{method} {path}")

    def _object(self, response: httpx.Response, what: str) -> dict[str, Any]:
        # A 409 nobody interprets is terminal; callers that understand one use request().
        if response.status_code == 409:
            detail = _detail(response)
            raise ValidationError(f"{self.name} {what} -> 409: {detail}", http_status=409)
        return self.json_body(response, what)

    def json_body(self, response: httpx.Response, what: str) -> dict[str, Any]:
        """The body as a JSON object; a 204 is an empty one. A 2xx that is not a JSON object
        (an HTML error page a proxy sent with 200, a truncated body, a list) is treated as
        *transient*, UpstreamUnavailable: the service behind the proxy is not answering, and
        the retry carries the same idempotency key, so retrying an effect is safe."""
        if response.status_code == 204:
            return {}
        try:
            value = response.json()
        except ValueError:
            got = f"a non-JSON body: {response.text[:80]!r}"
        else:
            if isinstance(value, dict):
                return value
            got = f"expected a JSON object, got {type(value).__name__}"
        where = f"{self.name} {what} -> {response.status_code}"
        raise UpstreamUnavailable(f"{where}: {got}", http_status=response.status_code)

    def _observe(self, method: str, status: int | None, started: float) -> None:
        if self._on_response is not None:
            self._on_response(self.name, method, status, time.perf_counter() - started)

    def _check(self, response: httpx.Response, where: str) -> httpx.Response:
        status = response.status_code
        if 200 <= status < 300:
            return response
        detail = _detail(response)
        message = f"{where} -> {status}: {detail}"
        if status < 400:  # a redirect, never followed: a misconfigured URL or a confused proxy
            location = response.headers.get("Location", "")
            raise UpstreamUnavailable(f"{message} (redirect to {location!r})", http_status=status)
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._clock)
            raise UpstreamRateLimited(message, retry_after=retry_after)
        if status >= 500:
            raise UpstreamUnavailable(message, http_status=status)
        if status == 408:
            raise UpstreamTimeout(message, http_status=status)
        if status == 409:
            if IN_PROGRESS in detail.lower():
                raise UpstreamUnavailable(message, http_status=status)
            return response
        if status in (401, 403):
            raise UpstreamAuthError(message, http_status=status)
        if status == 404:
            raise NotFound(message, http_status=status)
        raise ValidationError(message, http_status=status)  # 400, 422, and any other 4xx


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and "detail" in body:
        return str(body["detail"])[:200]
    return str(body)[:200]


class Upstreams(Mapping[str, "UpstreamClient"]):
    """The upstream clients by name, each made on first use: a worker whose job types call no
    upstream never builds one (each httpx client's SSL context cost about 35 ms of CPU at
    start-up). Safe to use from many handler threads."""

    def __init__(self, makers: Mapping[str, Callable[[], UpstreamClient]]) -> None:
        self._makers = dict(makers)
        self._made: dict[str, UpstreamClient] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __getitem__(self, name: str) -> UpstreamClient:
        client = self._made.get(name)
        if client is not None:
            return client
        with self._lock:
            if name not in self._made:
                maker = self._makers[name]  # KeyError for an upstream nobody configured
                if self._closed:
                    raise RuntimeError(f"upstream {name!r} asked for after the upstreams closed")
                self._made[name] = maker()
            return self._made[name]

    def __contains__(self, name: object) -> bool:
        return name in self._makers  # without making the client (Mapping's would)

    def __iter__(self) -> Iterator[str]:
        return iter(self._makers)

    def __len__(self) -> int:
        return len(self._makers)

    def close(self) -> None:
        """Close the clients made so far; none is made after this."""
        with self._lock:
            self._closed = True
            made = list(self._made.values())
        for client in made:
            client.close()


def build_upstreams(
    settings: Settings,
    transports: Mapping[str, httpx.BaseTransport] | None = None,
    on_response: ResponseHook | None = None,
) -> Upstreams:
    """``{"crm": ..., "billing": ...}``; ``transports`` (tests) by upstream name."""
    transports = transports or {}
    urls = {"crm": settings.crm_url, "billing": settings.billing_url}
    timeout = settings.upstream_timeout_seconds
    return Upstreams(
        {
            name: partial(
                UpstreamClient.create, name, url, timeout, transports.get(name), on_response
            )
            for name, url in urls.items()
        }
    )


def close_upstreams(upstreams: Mapping[str, UpstreamClient]) -> None:
    if isinstance(upstreams, Upstreams):
        upstreams.close()  # without making the ones never used
        return
    for client in upstreams.values():
        client.close()


def find_invoice_by_external_id(billing: UpstreamClient, external_id: str) -> dict[str, Any] | None:
    """Billing's invoice for a CRM invoice id, or None; Billing keeps ``external_id`` unique."""
    body = billing.get_json("/invoices", params={"external_id": external_id})
    items = body.get("items")
    if not isinstance(items, list):
        raise UpstreamUnavailable(f"billing GET /invoices -> no item list in {str(body)[:80]}")
    for item in items:
        if isinstance(item, dict) and item.get("external_id") == external_id:
            return item
    return None
