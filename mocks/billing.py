"""Mock Billing: customers upserted by PUT, invoices created once per key and per external_id.

Each customer keeps the list of writes applied to it, with the idempotency key and the
``X-Correlation-ID`` of the request that made each, and the writes it is processing right now
(``GET /customer_writes?customer_id=``), as a real billing system keeps an audit log and a list
of pending operations: it is how a caller that lost an upsert's answer finds out whether that
request was applied, or may still be."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from mocks.control import ServerState, build_app
from mocks.faults import (
    BILLING_DEFAULT_ENTITIES,
    Action,
    Decision,
    FaultBudget,
    FaultSettings,
)
from mocks.http import (
    BodyError,
    canonical,
    delay,
    fault_response,
    lost_response,
    mark_fault,
    not_found,
    read_json,
    validate,
    work_of,
)
from mocks.idempotency import (
    DEFAULT_TTL_SECONDS,
    MAX_KEY_LENGTH,
    Claim,
    IdempotencyStore,
    StoredResponse,
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
NO_KEY = "(no key)"  # effects label for writes sent without a key, so they still show up


class CustomerIn(BaseModel):
    name: str = Field(pattern=r"\S")  # non-empty and not only whitespace
    email: str
    country: str | None = None
    # When sent, an older version than the stored one is refused: a late write from a worker
    # that lost its lease cannot overwrite a newer one.
    version: int | None = Field(default=None, strict=True, ge=1)


class InvoiceIn(BaseModel):
    external_id: str = Field(min_length=1, max_length=255)
    customer_id: str = Field(min_length=1, max_length=255)
    amount_cents: int = Field(strict=True, ge=0)
    currency: str = Field(pattern=r"^[A-Za-z]{3}$")
    description: str = ""


@dataclass(frozen=True)
class Outcome:
    """What executing a write produced; `keep` says whether it is the key's answer."""

    status: int
    body: dict[str, Any]
    applied: bool
    keep: bool = True


class BillingState(ServerState):
    name = "billing"

    def __init__(
        self,
        settings: FaultSettings | None = None,
        *,
        idempotency_ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        budget: FaultBudget | None = None,
    ) -> None:
        defaults = FaultSettings(entities=dict(BILLING_DEFAULT_ENTITIES))
        super().__init__(settings or defaults, budget)
        self.keys = IdempotencyStore(idempotency_ttl_seconds, clock)
        self._lock = threading.Lock()
        self._customers: dict[str, dict[str, Any]] = {}
        self._customer_writes: dict[str, list[dict[str, Any]]] = {}
        self._customer_requests: dict[str, list[dict[str, Any]]] = {}  # being processed now
        self._invoices: dict[str, dict[str, Any]] = {}
        self._by_external_id: dict[str, str] = {}
        self._effects: Counter[str] = Counter()

    def effects(self) -> dict[str, int]:
        with self._lock:
            return dict(self._effects)

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._customers.get(customer_id)
            return dict(record) if record else None

    def customer_writes(self, customer_id: str) -> list[dict[str, Any]]:
        """The writes applied to a customer, oldest first (none for an unknown customer)."""
        with self._lock:
            return [dict(write) for write in self._customer_writes.get(customer_id, [])]

    def customer_requests(self, customer_id: str) -> list[dict[str, Any]]:
        """The writes to a customer that Billing is processing now (received, not answered)."""
        with self._lock:
            return [dict(request) for request in self._customer_requests.get(customer_id, [])]

    @contextmanager
    def processing(
        self, customer_id: str, key: str | None, correlation_id: str | None
    ) -> Iterator[None]:
        """A customer write listed as being processed while the block runs."""
        request = {"idempotency_key": key, "correlation_id": correlation_id}
        with self._lock:
            self._customer_requests.setdefault(customer_id, []).append(request)
        try:
            yield
        finally:
            with self._lock:  # a reset meanwhile has emptied the list already
                pending = self._customer_requests.get(customer_id, [])
                if request in pending:
                    pending.remove(request)
                if not pending:
                    self._customer_requests.pop(customer_id, None)

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        with self._lock:
            record = self._invoices.get(invoice_id)
            return dict(record) if record else None

    def invoices(self, external_id: str | None) -> list[dict[str, Any]]:
        with self._lock:
            if external_id is None:
                return [dict(r) for _, r in sorted(self._invoices.items())]
            found = self._by_external_id.get(external_id)
            return [dict(self._invoices[found])] if found else []

    def upsert_customer(
        self, customer_id: str, body: CustomerIn, key: str, correlation_id: str | None = None
    ) -> Outcome:
        with self._lock:
            current = self._customers.get(customer_id)
            if current and body.version is not None and body.version < current["version"]:
                stale = {"detail": "stale version", "current_version": current["version"]}
                return Outcome(409, stale, applied=False)
            record = {"id": customer_id, **body.model_dump()}
            record["version"] = body.version or (current["version"] if current else 1)
            self._customers[customer_id] = record
            write = {
                "idempotency_key": None if key == NO_KEY else key,
                "correlation_id": correlation_id,
                "version": record["version"],
            }
            self._customer_writes.setdefault(customer_id, []).append(write)
            self._effects[key] += 1
            return Outcome(200 if current else 201, dict(record), applied=True)

    def create_invoice(self, body: InvoiceIn, key: str) -> Outcome:
        with self._lock:
            if body.customer_id not in self._customers:
                # Refused before executing, like a validation error: not the key's answer, so
                # the same request succeeds once the customer has been synced.
                missing = {"detail": f"customer {body.customer_id} does not exist in Billing"}
                return Outcome(422, missing, applied=False, keep=False)
            existing = self._by_external_id.get(body.external_id)
            if existing is not None:
                duplicate = {
                    "detail": "duplicate external_id",
                    "existing_id": existing,
                    # Which request created it, so a caller can link to that effect.
                    "existing_idempotency_key": self._invoices[existing]["idempotency_key"],
                }
                return Outcome(409, duplicate, applied=False)
            record = {
                "id": f"inv_{len(self._invoices) + 1:06d}",
                **body.model_dump(),
                "idempotency_key": key,
            }
            self._invoices[record["id"]] = record
            self._by_external_id[body.external_id] = record["id"]
            self._effects[key] += 1
            return Outcome(201, dict(record), applied=True)

    def reset(self) -> None:
        super().reset()
        self.keys.clear()
        with self._lock:
            self._customers.clear()
            self._customer_writes.clear()
            self._customer_requests.clear()
            self._invoices.clear()
            self._by_external_id.clear()
            self._effects.clear()


def _idempotency_key(request: Request, *, required: bool) -> str | None:
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None and not required:
        return None
    if not key or len(key) > MAX_KEY_LENGTH:
        raise BodyError(400, f"{IDEMPOTENCY_HEADER} header is required (1-{MAX_KEY_LENGTH} chars)")
    return key


def create_billing_app(state: BillingState | None = None) -> FastAPI:
    """The Billing app over `state` (a fresh BillingState with the default entities if omitted)."""
    state = state or BillingState()
    app = build_app(state, title="mock Billing")

    async def execute_once(
        key: str | None, fingerprint: str, decision: Decision, execute: Callable[[str], Outcome]
    ) -> JSONResponse:
        if key is None:
            await delay(decision)
            outcome = execute(NO_KEY)
            return JSONResponse(outcome.body, outcome.status)
        claimed = state.keys.claim(key, fingerprint)
        if claimed.claim is Claim.IN_PROGRESS:
            return JSONResponse({"detail": "request in progress"}, 409)
        if claimed.claim is Claim.MISMATCH:
            detail = f"{IDEMPOTENCY_HEADER} reused with a different request"
            return JSONResponse({"detail": detail}, 422)
        if claimed.response is not None:
            stored = claimed.response
            return JSONResponse(stored.body, stored.status, {"Idempotent-Replayed": "true"})
        try:
            await delay(decision)  # a slow upstream holds the key while it "works"
            outcome = execute(key)
        except BaseException:
            state.keys.release(key)  # e.g. cancelled at shutdown: it did not execute
            raise
        if outcome.keep:
            state.keys.complete(key, StoredResponse(outcome.status, outcome.body))
        else:
            state.keys.release(key)
        return JSONResponse(outcome.body, outcome.status)

    async def write(
        request: Request,
        route: str,
        entity: str,
        key: str | None,
        body: dict[str, Any],
        execute: Callable[[str], Outcome],
    ) -> JSONResponse:
        # Faults first, like a proxy in front of the store: they never become a key's answer.
        decision = state.faults.decide(route, entity, effectful=True, work=work_of(request))
        mark_fault(request, decision)
        if (answer := fault_response(decision)) is not None:
            return answer
        if decision.action is Action.MISSING:
            return not_found("resource")
        fingerprint = canonical({"method": request.method, "path": request.url.path, "body": body})
        response = await execute_once(key, fingerprint, decision, execute)
        # "Applied, then the response was lost": the store already holds the real answer.
        return lost_response() if decision.lose_response else response

    async def read(request: Request, route: str, entity: str) -> JSONResponse | None:
        decision = state.faults.decide(route, entity, work=work_of(request))
        mark_fault(request, decision)
        await delay(decision)
        if (answer := fault_response(decision)) is not None:
            return answer
        return not_found("resource") if decision.action is Action.MISSING else None

    @app.put("/customers/{customer_id}")
    async def put_customer(request: Request, customer_id: str) -> JSONResponse:
        key = _idempotency_key(request, required=False)
        raw = await read_json(request)
        body = validate(CustomerIn, raw)
        correlation_id = request.headers.get("X-Correlation-ID")
        with state.processing(customer_id, key, correlation_id):
            return await write(
                request,
                "PUT /customers/{id}",
                customer_id,
                key,
                raw,
                lambda k: state.upsert_customer(customer_id, body, k, correlation_id),
            )

    @app.get("/customers/{customer_id}")
    async def get_customer(request: Request, customer_id: str) -> JSONResponse:
        if (answer := await read(request, "GET /customers/{id}", customer_id)) is not None:
            return answer
        record = state.customer(customer_id)
        return JSONResponse(record) if record else not_found("customer")

    @app.get("/customer_writes")
    async def list_customer_writes(request: Request, customer_id: str) -> JSONResponse:
        # A query, not a path: any id works, and an unknown customer has no writes (an empty
        # list is an answer; a 404 would be ambiguous with a missing route or a fault).
        if (answer := await read(request, "GET /customer_writes", customer_id)) is not None:
            return answer
        return JSONResponse(
            {
                "items": state.customer_writes(customer_id),
                "in_progress": state.customer_requests(customer_id),
            }
        )

    @app.post("/invoices")
    async def post_invoice(request: Request) -> JSONResponse:
        key = _idempotency_key(request, required=True)
        raw = await read_json(request)
        body = validate(InvoiceIn, raw)
        return await write(
            request,
            "POST /invoices",
            body.external_id,
            key,
            raw,
            lambda k: state.create_invoice(body, k),
        )

    @app.get("/invoices")
    async def list_invoices(request: Request, external_id: str | None = None) -> JSONResponse:
        if (answer := await read(request, "GET /invoices", external_id or "*")) is not None:
            return answer
        return JSONResponse({"items": state.invoices(external_id)})

    @app.get("/invoices/{invoice_id}")
    async def get_invoice(request: Request, invoice_id: str) -> JSONResponse:
        if (answer := await read(request, "GET /invoices/{id}", invoice_id)) is not None:
            return answer
        record = state.invoice(invoice_id)
        return JSONResponse(record) if record else not_found("invoice")

    return app
