"""syncbridge plugin: the ``invoice`` job type (CRM invoice → Billing invoice, at most once).

The entity id is a CRM invoice id. Two layers keep the invoice single: the idempotency key
covers retries of the same request (same lineage, same body); Billing's natural key
(``external_id``, the CRM invoice id, kept unique) covers everything else, e.g. a retry after
the CRM record changed: its 409 "duplicate external_id" means "already applied".

Self-contained on purpose: it depends on ``syncbridge`` only, so it carries its own (minimal)
customer upsert instead of importing the ``customer`` plugin.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeGuard

from syncbridge import AppliedEffect, JobContext, JobType, Success, ValidationError
from syncbridge.errors import UpstreamUnavailable
from syncbridge.hookspecs import hookimpl
from syncbridge.upstream import UpstreamClient, find_invoice_by_external_id, segment

CURRENCY = re.compile(r"^[A-Z]{3}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*\.[^@\s]*[^@\s.]$")
DUPLICATE = "duplicate external_id"


def _invalid(what: str, field: str, problem: str) -> ValidationError:
    return ValidationError(f"{what}: field {field!r} {problem}", field=field)


def _int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_invoice(record: dict[str, Any], invoice_id: str) -> dict[str, Any]:
    """The Billing body for a CRM invoice; a ValidationError names the bad field."""
    what = f"CRM invoice {invoice_id!r}"
    if record.get("id") != invoice_id:
        raise _invalid(what, "id", f"does not match the entity: {record.get('id')!r}")
    customer_id = record.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise _invalid(what, "customer_id", f"must be a non-empty string, got {customer_id!r}")
    amount = record.get("amount_cents")
    if not _int(amount) or amount < 0:
        raise _invalid(what, "amount_cents", f"must be an integer >= 0, got {amount!r}")
    currency = record.get("currency")
    if not isinstance(currency, str) or not CURRENCY.match(currency):
        raise _invalid(what, "currency", f"must be 3 upper-case letters, got {currency!r}")
    description = record.get("description") or ""
    if not isinstance(description, str):
        raise _invalid(what, "description", f"must be a string, got {description!r}")
    return {
        "external_id": invoice_id,
        "customer_id": customer_id,
        "amount_cents": amount,
        "currency": currency,
        "description": description,
    }


def validate_customer(record: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """The Billing body for the invoice's CRM customer; fields are named ``customer.<field>``."""
    what = f"CRM customer {customer_id!r}"
    name, email, country, version = (record.get(f) for f in ("name", "email", "country", "version"))
    if record.get("id") != customer_id:
        raise _invalid(what, "customer.id", f"does not match: {record.get('id')!r}")
    if not isinstance(name, str) or not name.strip():
        raise _invalid(what, "customer.name", f"must be a non-empty string, got {name!r}")
    if not isinstance(email, str) or not EMAIL.match(email):
        raise _invalid(what, "customer.email", f"is not an email address: {email!r}")
    if country is not None and not isinstance(country, str):
        raise _invalid(what, "customer.country", f"must be a string, got {country!r}")
    if version is not None and not _int(version):
        raise _invalid(what, "customer.version", f"must be an integer, got {version!r}")
    return {"name": name, "email": email, "country": country, "version": version}


def _stop_if_requested(ctx: JobContext, before: str) -> None:
    if ctx.cancel_requested:  # cancel, lost lease or timeout: stop between calls (retryable)
        raise UpstreamUnavailable(f"stopped before {before}: {ctx.stop_reason or 'requested'}")


def _ensure_customer(
    ctx: JobContext, crm: UpstreamClient, billing: UpstreamClient, customer_id: str
) -> AppliedEffect | None:
    """Upsert the invoice's customer into Billing, with its own idempotency key: the effect if
    Billing applied it (now, or before under the same key), None if it holds a newer one."""
    record = crm.get_json(f"/customers/{segment(customer_id)}")
    body = validate_customer(record, customer_id)
    _stop_if_requested(ctx, "PUT /customers")
    key = ctx.effect_key("upsert_customer", {"id": customer_id, **body})
    path = f"/customers/{segment(customer_id)}"
    response = billing.request("PUT", path, json=body, idempotency_key=key)
    if response.status_code == 409:
        answer = billing.json_body(response, f"PUT {path}")
        # "stale version": Billing already holds a newer customer; the invoice can go ahead.
        if answer.get("detail") != "stale version":
            raise ValidationError(f"billing PUT {path} -> 409: {answer}", http_status=409)
        return None
    return AppliedEffect(key, "billing", customer_id)


def sync_invoice(ctx: JobContext) -> Success:
    crm, billing = ctx.upstream("crm"), ctx.upstream("billing")
    record = crm.get_json(f"/invoices/{segment(ctx.entity_id)}")
    body = validate_invoice(record, ctx.entity_id)
    _stop_if_requested(ctx, "reading the customer")
    # Recorded with the invoice when the job succeeds, so the ledger holds every effect the
    # job applied, not only its own.
    customer = _ensure_customer(ctx, crm, billing, body["customer_id"])
    also_applied = (customer,) if customer else ()
    _stop_if_requested(ctx, "POST /invoices")
    key = ctx.effect_key("create_invoice", body)
    response = billing.request("POST", "/invoices", json=body, idempotency_key=key)
    answer = billing.json_body(response, "POST /invoices")
    if response.status_code == 409:
        existing = answer.get("existing_id")
        if answer.get("detail") != DUPLICATE or not isinstance(existing, str) or not existing:
            raise ValidationError(f"billing POST /invoices -> 409: {answer}", http_status=409)
        # Billing already holds this CRM invoice (an earlier attempt or lineage made it): the
        # effect is applied. Its amount is Billing's, not necessarily this body's.
        ctx.log.info("invoice_already_applied", external_id=ctx.entity_id, existing_id=existing)
        # Link to the effect that created it (one ledger row per applied effect), not ours.
        created_by = answer.get("existing_idempotency_key")
        applied_key = created_by if isinstance(created_by, str) and created_by else key
        return Success(AppliedEffect(applied_key, "billing", existing), also_applied)
    invoice_id = answer.get("id")
    if not isinstance(invoice_id, str) or not invoice_id:
        raise UpstreamUnavailable(f"billing POST /invoices -> {response.status_code}: no id")
    return Success(AppliedEffect(key, "billing", invoice_id), also_applied)


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
