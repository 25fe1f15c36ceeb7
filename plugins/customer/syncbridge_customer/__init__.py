"""syncbridge plugin: the ``customer`` job type (CRM customer → Billing customer)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from syncbridge import AppliedEffect, JobContext, JobType, Success, ValidationError
from syncbridge.errors import UpstreamUnavailable
from syncbridge.hookspecs import hookimpl
from syncbridge.upstream import segment

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def validate_customer(record: dict[str, Any], customer_id: str) -> dict[str, Any]:
    """The Billing body for a CRM customer record; ValidationError names the bad field."""
    if record.get("id") != customer_id:
        raise ValidationError(
            f"field 'id': CRM returned {record.get('id')!r} for {customer_id!r}", field="id"
        )
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(
            f"field 'name': must be a non-empty string, got {name!r}", field="name"
        )
    email = record.get("email")
    if not isinstance(email, str) or not EMAIL.match(email):
        raise ValidationError(f"field 'email': not an email address: {email!r}", field="email")
    country = record.get("country")
    if country is not None and not isinstance(country, str):
        raise ValidationError(
            f"field 'country': must be a string, got {country!r}", field="country"
        )
    version = record.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise ValidationError(
            f"field 'version': must be an integer, got {version!r}", field="version"
        )
    return {"name": name, "email": email, "country": country, "crm_version": version}


def upsert_customer(ctx: JobContext, customer_id: str) -> AppliedEffect:
    """Read the customer from the CRM and upsert it into Billing. Public: the invoice plugin
    (which depends on this distribution) uses it to make sure an invoice's customer exists."""
    record = ctx.upstream("crm").get_json(f"/customers/{segment(customer_id)}")
    body = validate_customer(record, customer_id)
    if ctx.cancel_requested:
        raise UpstreamUnavailable(f"stopped before the Billing call: {ctx.stop_reason}")
    key = ctx.effect_key("upsert_customer", {"id": customer_id, **body})
    ctx.upstream("billing").send_json(
        "PUT", f"/customers/{segment(customer_id)}", body, idempotency_key=key
    )
    return AppliedEffect(effect_key=key, upstream="billing", upstream_ref=customer_id)


def sync_customer(ctx: JobContext) -> Success:
    return Success(effect=upsert_customer(ctx, ctx.entity_id))


@hookimpl
def register_job_types(register: Callable[[JobType], None]) -> None:
    register(
        JobType(
            name="customer",
            handler=sync_customer,
            description="sync a CRM customer into Billing (upsert)",
            timeout_seconds=60,
        )
    )
