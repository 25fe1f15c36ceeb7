"""HTTP plumbing shared by both mock apps: correlation ids, request log, bodies, fault answers."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mocks.faults import Action, Decision

CORRELATION_HEADER = "X-Correlation-ID"
# Control routes (/_stats, /_faults, ...) are for tests and operators: no latency, not counted.
CONTROL_PREFIX = "/_"

M = TypeVar("M", bound=BaseModel)


class BodyError(Exception):
    """A request body we refuse; always a 4xx, never a 500."""

    def __init__(self, status: int, detail: object) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail

    def response(self) -> JSONResponse:
        return JSONResponse({"detail": self.detail}, status_code=self.status)


def _refuse_constant(name: str) -> float:
    # NaN/Infinity are not JSON; accepting them would make our own JSON answer fail (a 500).
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses as inf: same problem as a literal Infinity
        raise ValueError(f"number out of range: {text[:20]}")
    return value


async def read_json(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or BodyError(400) for anything that is not one."""
    raw = await request.body()
    try:
        data = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, absurd nesting
        raise BodyError(400, f"malformed JSON body: {type(exc).__name__}") from exc
    if not isinstance(data, dict):
        raise BodyError(422, "JSON body must be an object")
    return data


def validate(model: type[M], data: dict[str, Any]) -> M:
    """Validate into `model`, or BodyError(422) with errors that are themselves valid JSON."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise BodyError(422, errors) from exc


def canonical(data: object) -> str:
    """One spelling per JSON value, so key order or spacing never changes a fingerprint."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def not_found(what: str) -> JSONResponse:
    return JSONResponse({"detail": f"{what} not found"}, status_code=404)


def fault_response(decision: Decision) -> JSONResponse | None:
    """The answer a fault-injecting proxy would give instead of the app, if any."""
    if decision.action is Action.UNAVAILABLE:
        return JSONResponse({"detail": "injected fault: service unavailable"}, status_code=503)
    if decision.action is Action.RATE_LIMITED:
        # `:g` keeps whole seconds RFC-shaped ("1") and lets tests use fractions ("0.2").
        headers = {"Retry-After": f"{decision.retry_after_seconds:g}"}
        return JSONResponse({"detail": "injected fault: rate limited"}, 429, headers=headers)
    return None


def lost_response() -> JSONResponse:
    return JSONResponse({"detail": "injected fault: response lost"}, status_code=502)


def mark_fault(request: Request, decision: Decision) -> None:
    """Tell the request log which fault was injected, if any."""
    if decision.injected:
        request.state.fault = decision.injected


async def delay(decision: Decision) -> None:
    if decision.delay_seconds > 0:
        await asyncio.sleep(decision.delay_seconds)


class ObservedMiddleware:
    """Echo X-Correlation-ID, add latency, count statuses, write one log line per request.

    A plain ASGI middleware rather than BaseHTTPMiddleware, so cancellation and context
    variables behave as in the app itself.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        server: str,
        latency_ms: Callable[[], int],
        record: Callable[[int], None],
    ) -> None:
        self.app = app
        self.server = server
        self.latency_ms = latency_ms
        self.record = record
        self.log = logging.getLogger(f"mocks.{server}")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        correlation_id = Headers(scope=scope).get(CORRELATION_HEADER) or uuid.uuid4().hex
        path: str = scope["path"]
        control = path.startswith(CONTROL_PREFIX)
        status = 500  # what the client sees if the app raises before answering
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append(CORRELATION_HEADER, correlation_id)
            await send(message)

        try:
            latency = self.latency_ms()
            if latency > 0 and not control:
                await asyncio.sleep(latency / 1000)
            await self.app(scope, receive, send_with_id)
        finally:
            if not control:
                self.record(status)
            fault = scope.get("state", {}).get("fault")
            fields = {
                "server": self.server,
                "method": scope["method"],
                "path": path,
                "status": status,
                "correlation_id": correlation_id,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            }
            if fault:
                fields["fault"] = fault
            self.log.info("request", extra={"fields": fields})


def work_of(request: Request) -> str | None:
    """The caller's unit of work for the fault budget: its correlation id, if it sent one."""
    return request.headers.get(CORRELATION_HEADER) or None
