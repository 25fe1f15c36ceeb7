"""syncbridge plugin: the ``invoice`` job type (CRM invoice → Billing invoice, at most once).

Two layers keep it at most once: the idempotency key covers retries of the same request (the
same body), Billing's natural key (``external_id``, the CRM invoice id) covers everything else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from syncbridge_customer import upsert_customer

from syncbridge import AppliedEffect, JobContext, JobType, Success, ValidationError
from syncbridge.errors import UpstreamUnavailable
from syncbridge.hookspecs import hookimpl
from syncbridge.upstream import find_invoice_by_external_id, segment

CURRENCY = re.compile(r"^[A-Z]{3}$")


def validate_invoice(record: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """The Billing body for a CRM invoice; ValidationError names the bad field."""
    if record.get("id") != invoice_id:
        raise ValidationError(
            f"field 'id': CRM returned {record.get('id')!r} for {invoice_id!r}", field="id"
        )
    customer_id = record.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise ValidationError(
            f"field 'customer_id': must be a non-empty string, got {customer_id!r}",
            field="customer_id",
        )
    amount = record.get("amount_cents")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        raise ValidationError(
            f"field 'amount_cents': must be an integer >= 0, got {amount!r}", field="amount_cents"
        )
    currency = record.get("currency")
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise ValidationError(
            f"field 'currency': must be 3 upper-case letters, got {currency!r}", field="currency"
        )
    description = record.get("description") or ""
    if not isinstance(description, str):
        raise ValidationError("field 'description': must be a string", field="description")
    return {
        "external_id": invoice_id,
        "customer_id": customer_id,
        "amount_cents": amount,
        "currency": currency,
        "description": description,
    }


def sync_invoice(ctx: JobContext) -> Success:
    record = ctx.upstream("crm").get_json(f"/invoices/{segment(ctx.entity_id)}")
    body = validate_invoice(record, ctx.entity_id)
    upsert_customer(ctx, body["customer_id"])
    if ctx.cancel_requested:
        raise UpstreamUnavailable(f"stopped before creating the invoice: {ctx.stop_reason}")
    key = ctx.effect_key("create_invoice", body)
    billing = ctx.upstream("billing")
    response = billing.request("POST", "/invoices", json=body, idempotency_key=key)
    answer = billing.json_body(response, "POST /invoices")
    if response.status_code == 409:
        existing = answer.get("existing_id")
        if answer.get("detail") != "duplicate external_id" or not isinstance(existing, str):
            raise ValidationError(f"billing POST /invoices -> 409: {answer}", http_status=409)
        ctx.log.info("invoice_already_applied", existing_id=existing)
        return Success(effect=AppliedEffect(key, "billing", existing))
    invoice_id = answer.get("id")
    if not isinstance(invoice_id, str):
        raise UpstreamUnavailable(f"billing POST /invoices: no invoice id in {answer}")
    return Success(effect=AppliedEffect(key, "billing", invoice_id))


def reconcile_invoice(ctx: JobContext) -> AppliedEffect | None:
    """Did an attempt with an unknown outcome create the invoice? Billing's natural key says."""
    existing = find_invoice_by_external_id(ctx.upstream("billing"), ctx.entity_id)
    if existing is None:
        return None
    key = existing.get("idempotency_key")
    if not isinstance(key, str) or not key:
        key = f"reconciled-{ctx.lineage_id}-{ctx.entity_id}"
    return AppliedEffect(key, "billing", str(existing.get("id")))


@hookimpl
def register_job_types(register: Callable[[JobType], None]) -> None:
    register(
        JobType(
            name="invoice",
            handler=sync_invoice,
            description="sync a CRM invoice into Billing (create once)",
            timeout_seconds=60,
            reconcile=reconcile_invoice,
        )
    )
