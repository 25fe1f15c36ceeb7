"""Mock CRM: read-only customers and invoices, plus test hooks that change a record."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from mocks import data
from mocks.control import ServerState, build_app
from mocks.faults import CRM_DEFAULT_ENTITIES, Action, FaultBudget, FaultSettings
from mocks.http import (
    delay,
    fault_response,
    mark_fault,
    not_found,
    read_json,
    validate,
    work_of,
)

Kind = Literal["customer", "invoice"]
_BASE: dict[Kind, Callable[[str], dict[str, Any] | None]] = {
    "customer": data.base_customer,
    "invoice": data.base_invoice,
}


class CrmState(ServerState):
    """Records are synthetic; only changes made through the test hooks are stored."""

    name = "crm"

    def __init__(
        self, settings: FaultSettings | None = None, budget: FaultBudget | None = None
    ) -> None:
        super().__init__(settings or FaultSettings(entities=dict(CRM_DEFAULT_ENTITIES)), budget)
        self._lock = threading.Lock()
        self._changed: dict[tuple[Kind, str], dict[str, Any]] = {}

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        return self.current("customer", customer_id)

    def invoice(self, invoice_id: str) -> dict[str, Any] | None:
        return self.current("invoice", invoice_id)

    def current(self, kind: Kind, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            changed = self._changed.get((kind, record_id))
        return dict(changed) if changed is not None else _BASE[kind](record_id)

    def change(self, kind: Kind, record_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Apply `fields` to an existing record and bump its version ("changed upstream")."""
        with self._lock:
            current = self._changed.get((kind, record_id)) or _BASE[kind](record_id)
            if current is None:
                return None
            updated = {**current, **fields, "version": current["version"] + 1}
            self._changed[(kind, record_id)] = updated
            return dict(updated)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self._changed.clear()


class CustomerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    email: str | None = None
    country: str | None = None


class InvoiceChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: str | None = None
    amount_cents: int | None = Field(default=None, strict=True)
    currency: str | None = None
    description: str | None = None


def create_crm_app(state: CrmState | None = None) -> FastAPI:
    """The CRM app over `state` (a fresh CrmState with the default entities if omitted)."""
    state = state or CrmState()
    app = build_app(state, title="mock CRM")

    async def read(
        request: Request,
        route: str,
        record_id: str,
        find: Callable[[str], dict[str, Any] | None],
        invalid: Callable[[str], dict[str, Any]],
    ) -> JSONResponse | None:
        decision = state.faults.decide(route, record_id, work=work_of(request))
        mark_fault(request, decision)
        await delay(decision)
        if (answer := fault_response(decision)) is not None:
            return answer
        if decision.action is Action.MISSING or (record := find(record_id)) is None:
            return None
        if decision.action is Action.INVALID:
            return JSONResponse(invalid(record_id))
        return JSONResponse(record)

    @app.get("/customers/{customer_id}")
    async def get_customer(request: Request, customer_id: str) -> JSONResponse:
        answer = await read(
            request, "GET /customers/{id}", customer_id, state.customer, data.invalid_customer
        )
        return answer or not_found("customer")

    @app.get("/invoices/{invoice_id}")
    async def get_invoice(request: Request, invoice_id: str) -> JSONResponse:
        answer = await read(
            request, "GET /invoices/{id}", invoice_id, state.invoice, data.invalid_invoice
        )
        return answer or not_found("invoice")

    @app.post("/_customers/{customer_id}")
    async def change_customer(request: Request, customer_id: str) -> JSONResponse:
        change = validate(CustomerChange, await read_json(request))
        record = state.change("customer", customer_id, change.model_dump(exclude_none=True))
        return JSONResponse(record) if record else not_found("customer")

    @app.post("/_invoices/{invoice_id}")
    async def change_invoice(request: Request, invoice_id: str) -> JSONResponse:
        change = validate(InvoiceChange, await read_json(request))
        record = state.change("invoice", invoice_id, change.model_dump(exclude_none=True))
        return JSONResponse(record) if record else not_found("invoice")

    return app
