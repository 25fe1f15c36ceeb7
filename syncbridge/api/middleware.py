"""One pure ASGI middleware around every request:

- reads ``X-Correlation-ID`` (kept when it is a sane token, else replaced) or makes one, binds it
  to the log context, and returns it on every response, errors included;
- refuses a mutating ``/api/`` call without the admin bearer token (401, before routing);
- refuses a request body over ``MAX_BODY_BYTES`` (413), by its ``Content-Length`` before
  reading it, or, sent in chunks, as soon as the chunks read exceed it;
- adds the security headers (a CSP without inline script, no framing, no sniffing,
  no referrer to other sites);
- writes one canonical log line and one metrics observation per request, labelled with the route
  *template* (``/api/jobs/{job_id}``), never the raw path.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Sequence
from typing import Any

import structlog
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syncbridge.api.auth import SAFE_METHODS, bearer_token, token_matches
from syncbridge.api.throttle import FailedLogins, Verdict
from syncbridge.logs import get_logger
from syncbridge.metrics import observe_api_request

CORRELATION_HEADER = "x-correlation-id"
_CORRELATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+=~-]{0,127}$")
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
# Bodies are read into memory before anything looks at them. A payload may hold 1 MiB of JSON
# (services.PAYLOAD_MAX_BYTES, counted as UTF-8); a client that escapes every character as
# \uXXXX sends up to six times that, hence the margin.
MAX_BODY_BYTES = 8 * 1024 * 1024
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]


def accepted_correlation_id(value: str | None) -> str:
    if value and _CORRELATION.match(value):
        return value
    return uuid.uuid4().hex


def route_label(scope: Scope, before: Scope, routes: Sequence[BaseRoute] = ()) -> str:
    """The matched route's template. A request the middleware refused never reached routing,
    and plain Starlette routes (``/openapi.json``, the static mount) are not recorded in the
    scope: those are matched again against the scope as it was before routing changed it, first
    against ``routes`` (the app's own routes: FastAPI's ``app.routes`` holds included routers,
    which match without naming a template), then against the app's."""
    route = scope.get("route")
    if route is None:
        app = scope.get("app")
        for candidate in (*routes, *getattr(app, "routes", ())):
            if candidate.matches(before)[0] is Match.FULL:
                route = candidate
                break
    path = getattr(route, "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class ApiMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        admin_token: str,
        failed_logins: FailedLogins,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.admin_token = admin_token
        self.failed_logins = failed_logins
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = Headers(scope=scope)
        correlation = accepted_correlation_id(headers.get(CORRELATION_HEADER))
        scope.setdefault("state", {})["correlation_id"] = correlation
        extra = [(CORRELATION_HEADER.encode(), correlation.encode()), *SECURITY_HEADERS]
        status = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status, response_started = message["status"], True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        method = scope["method"]
        before = dict(scope)
        log = get_logger()
        with structlog.contextvars.bound_contextvars(correlation_id=correlation):
            try:
                refusal = self._refusal(method, scope, headers)
                if refusal is None and _declared_length(headers) > MAX_BODY_BYTES:
                    await _send_json(send_with_headers, 413, _TOO_LARGE)
                elif refusal is None:
                    await self.app(scope, _capped(receive), send_with_headers)
                elif refusal.retry_after is not None:
                    wait = refusal.retry_after
                    body = {"detail": f"{_THROTTLED} {wait} s"}
                    await _send_json(send_with_headers, 429, body, [_retry_after(wait)])
                else:
                    await _send_json(send_with_headers, 401, _UNAUTHORISED, _BEARER_CHALLENGE)
            except BodyTooLarge:
                if not response_started:
                    await _send_json(send_with_headers, 413, _TOO_LARGE)
            except Exception as exc:
                log.exception("http_request_error", error_class=type(exc).__name__)
                if not response_started:
                    await _send_json(send_with_headers, 500, {"detail": "internal error"})
            seconds = time.perf_counter() - started
            route = route_label(scope, before, self.routes)
            observe_api_request(method, route, status, seconds)
            log.info(
                "http_request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 3),
            )

    def _refusal(self, method: str, scope: Scope, headers: Headers) -> Verdict | None:
        """None when the request may go on; else why not (a wrong token, or a throttled
        address). Only a presented token is a guess: a request without one is refused
        without counting against its address."""
        if method in SAFE_METHODS or not scope["path"].startswith("/api/"):
            return None
        given = bearer_token(headers.get("authorization"))
        if not given:
            return Verdict(ok=False)
        client = scope.get("client")
        address = client[0] if client else None
        verdict = self.failed_logins.check(address, lambda: token_matches(given, self.admin_token))
        return None if verdict.ok else verdict


_TOO_LARGE = {"detail": f"request body over {MAX_BODY_BYTES:,} bytes"}


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a chunked body passes ``MAX_BODY_BYTES``. An HTTP error, so
    that FastAPI's body reading lets it through as a 413 (it turns any other error there into
    "error parsing the body"); the middleware answers it too, for readers that do not."""

    def __init__(self) -> None:
        super().__init__(413, _TOO_LARGE["detail"])


def _declared_length(headers: Headers) -> int:
    """The body's ``Content-Length``; 0 when absent (a chunked body is counted as it comes)
    or not a number (the server refuses that itself)."""
    try:
        return int(headers.get("content-length", "0"))
    except ValueError:
        return 0


def _capped(receive: Receive) -> Receive:
    """``receive``, raising :class:`BodyTooLarge` once the body read exceeds the limit."""
    read = 0

    async def capped() -> Message:
        nonlocal read
        message = await receive()
        if message["type"] == "http.request":
            read += len(message.get("body", b""))
            if read > MAX_BODY_BYTES:
                raise BodyTooLarge
        return message

    return capped


_UNAUTHORISED = {"detail": "missing or wrong bearer token (Authorization: Bearer <admin token>)"}
_THROTTLED = "too many wrong tokens from this address: try again in"


def _retry_after(seconds: int) -> tuple[bytes, bytes]:
    return (b"retry-after", str(seconds).encode())


_BEARER_CHALLENGE = [(b"www-authenticate", b'Bearer realm="syncbridge"')]


async def _send_json(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
